package views

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rankhub/rankhub/views/internal/proto"
)

// TestSentinelsHoldAcrossTheHubSplit: the errors the hub (views/internal/hub)
// and the protocol make match views' sentinels with errors.Is, because
// views re-exports the same variables: a hub that shut down answers
// ErrShutdown; a RemoteError of every code matches its sentinel and no
// other; an outside client's hub error of every reply code matches its
// sentinel.
func TestSentinelsHoldAcrossTheHubSplit(t *testing.T) {
	h := NewHub(HubConfig{Host: "testhost"})
	h.Shutdown(time.Second)
	if err := h.WaitForEngines(context.Background(), 1); !errors.Is(err, ErrShutdown) {
		t.Errorf("WaitForEngines on a hub that shut down: %v, want ErrShutdown", err)
	}
	cl := NewClient(h)
	if _, err := cl.Result(1); !errors.Is(err, ErrUnknownResult) {
		t.Errorf("Result of an id never given out: %v, want ErrUnknownResult", err)
	}

	sentinels := map[string]error{
		CodeEngineDied: ErrEngineDied, CodeAborted: ErrAborted, CodePanic: ErrPanic, CodeUnknownFunction: ErrUnknownFunction,
		CodeNotSendable: ErrNotSendable, CodeDependencyTimeout: ErrDependencyTimeout,
		CodeImpossibleDependency: ErrImpossibleDependency, CodeShutdown: ErrShutdown,
	}
	all := []error{ErrTimeout, ErrNotReady, ErrEngineDied, ErrAborted, ErrPanic, ErrNoEngines, ErrNoSuchEngine, ErrShutdown,
		ErrDependencyTimeout, ErrImpossibleDependency, ErrUnknownResult, ErrCannotGather, ErrUnknownFunction, ErrNotSendable}
	for code, want := range sentinels {
		var err error = &proto.RemoteError{EngineID: 1, Code: code, Message: "m"}
		for _, s := range all {
			if got := errors.Is(err, s); got != (s == want) {
				t.Errorf("RemoteError with code %q: errors.Is(err, %v) = %v", code, s, got)
			}
		}
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != code {
			t.Errorf("RemoteError with code %q: errors.As to *views.RemoteError failed", code)
		}
	}
	for _, s := range []error{ErrNoSuchEngine, ErrShutdown, ErrUnknownResult, ErrNoEngines, ErrNotSendable} {
		he := &proto.HubError{Code: proto.HubErrCode(s), Msg: "m"}
		if !errors.Is(he, s) {
			t.Errorf("hub error with code %q does not match %v", he.Code, s)
		}
	}
}
