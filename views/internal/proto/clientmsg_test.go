package proto

import (
	"bytes"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/views/internal/codec"
	"github.com/rankhub/rankhub/views/internal/hubcore"
)

// FuzzClientMessages: the client↔hub parsers never panic on any bytes, and
// a request that parses encodes back to a form that parses to the same
// bytes again (no field is lost or read as a zero).
func FuzzClientMessages(f *testing.F) {
	task, _, _ := codec.EncodeValues(KindApply, "add3", []any{1, 2, 3})
	for _, m := range []*Request{
		{Op: OpEngines}, {Op: OpHistory}, {Op: OpQueueStatus}, {Op: OpFetch, IDs: []uint64{1, 2}}, {Op: OpAbort, IDs: []uint64{3}},
		{Op: OpResultStatus}, {Op: OpPurge, IDs: []uint64{}}, {Op: OpControl, Targets: []int{0, 1}, Control: CtlClear},
		{Op: OpShutdown, Timeout: time.Second},
		{Op: OpSubmit, Direct: true, Kind: KindApply, Name: "add3", Targets: []int{0}, Payloads: []Payload{{Ctrl: task}}},
		{Op: OpSubmit, Kind: KindMap, Name: "add3", Spec: Spec{After: hubcore.Dependency{MsgIDs: []uint64{1}, Any: true}, Timeout: time.Second,
			Retries: 2, Require: []string{"gpu"}, Depend: "ok"}, Payloads: []Payload{{Ctrl: task}, {Ctrl: task}}},
	} {
		ctrl, _, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(0), ctrl)
	}
	reply, _, _ := (&Reply{Code: "error", Message: "m", Result: []any{1, "x"}, Tasks: []TaskHeader{{ID: 1, Name: "f", After: []uint64{2}}}}).Encode()
	f.Add(byte(1), reply)
	notify, _, _ := codec.EncodeValues((&Notify{Engine: 1, Host: "h", Value: []float64{1, 2}, Exit: 3}).Values()...)
	f.Add(byte(2), notify)
	f.Add(byte(3), (&Hello{Kind: "client", PID: 7, Host: "h"}).Frame().Control)
	f.Fuzz(func(t *testing.T, kind byte, ctrl []byte) {
		fr := &comm.Frame{Control: ctrl}
		switch kind % 4 {
		case 0:
			m, err := ParseRequest(fr)
			if err != nil {
				return
			}
			again, bufs, err := m.Encode()
			if err != nil {
				t.Fatalf("a parsed request %+v does not encode: %v", m, err)
			}
			m2, err := ParseRequest(&comm.Frame{Control: again, Buffers: bufs})
			if err != nil {
				t.Fatalf("a parsed request %+v encodes to one that does not parse: %v", m, err)
			}
			third, _, _ := m2.Encode()
			if !bytes.Equal(again, third) {
				t.Fatalf("request %+v changes when encoded again: %+v", m, m2)
			}
		case 1:
			ParseReply(fr)
		case 2:
			ParseNotify(fr)
		case 3:
			ParseHello(fr)
		}
	})
}
