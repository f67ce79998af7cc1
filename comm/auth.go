package comm

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"time"
)

// KeySize is the size of a job key in bytes (256 bits).
const KeySize = 32

// NewKey returns a fresh random job key.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("comm: job key: %w", err)
	}
	return k, nil
}

// ParseKey decodes a hex job key as written in the connection file.
func ParseKey(s string) ([]byte, error) {
	k, err := hex.DecodeString(s)
	if err != nil || len(k) != KeySize {
		return nil, fmt.Errorf("comm: job key must be %d hex digits", 2*KeySize)
	}
	return k, nil
}

// The handshake is a mutual HMAC-SHA256 challenge-response. Nothing but these
// fixed-size messages is read before it succeeds.
//
//	server → client: "RHUBAUTH" | nonceS[32]
//	client → server: "RHUBAUTH" | nonceC[32] | HMAC(key, "rankhub client" | nonceS | nonceC)
//	server → client: HMAC(key, "rankhub server" | nonceC | nonceS)
//
// A server that receives a wrong MAC closes the connection without answering.
//
// With TLS (a TCP listener with TLSAllow or TLSRequire, a dialer with
// Options.TLSFingerprint) the client reads the plain challenge, then starts
// TLS 1.3 instead of answering (its first byte, 0x16, tells the listener),
// and the whole exchange above runs again inside TLS.
var authMagic = []byte("RHUBAUTH")

const nonceSize = 32

func mac(key []byte, label string, a, b []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write(a)
	m.Write(b)
	return m.Sum(nil)
}

// serverHello sends the challenge.
func serverHello(nc net.Conn) (nonceS []byte, err error) {
	nonceS = make([]byte, nonceSize)
	if _, err := rand.Read(nonceS); err != nil {
		return nil, err
	}
	if _, err := nc.Write(append(append([]byte{}, authMagic...), nonceS...)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAuth, err)
	}
	return nonceS, nil
}

// serverVerify reads the client's proof for nonceS and answers with the
// server's.
func serverVerify(nc net.Conn, key, nonceS []byte) error {
	msg := make([]byte, len(authMagic)+nonceSize+sha256.Size)
	if _, err := io.ReadFull(nc, msg); err != nil {
		return fmt.Errorf("%w: reading client proof: %v", ErrAuth, err)
	}
	if !bytes.Equal(msg[:len(authMagic)], authMagic) {
		return fmt.Errorf("%w: not a rankhub peer (bad greeting %q)", ErrAuth, printable(msg[:len(authMagic)]))
	}
	nonceC := msg[len(authMagic) : len(authMagic)+nonceSize]
	if !hmac.Equal(msg[len(authMagic)+nonceSize:], mac(key, "rankhub client", nonceS, nonceC)) {
		return fmt.Errorf("%w: wrong job key", ErrAuth)
	}
	if _, err := nc.Write(mac(key, "rankhub server", nonceC, nonceS)); err != nil {
		return fmt.Errorf("%w: %v", ErrAuth, err)
	}
	return nil
}

func clientHandshake(nc net.Conn, key []byte, timeout time.Duration) error {
	nc.SetDeadline(time.Now().Add(timeout))
	defer nc.SetDeadline(time.Time{})
	nonceS, err := readHello(nc)
	if err != nil {
		return err
	}
	nonceC := make([]byte, nonceSize)
	if _, err := rand.Read(nonceC); err != nil {
		return err
	}
	msg := append(append(append([]byte{}, authMagic...), nonceC...), mac(key, "rankhub client", nonceS, nonceC)...)
	if _, err := nc.Write(msg); err != nil {
		return fmt.Errorf("%w: %v", ErrAuth, err)
	}
	proof := make([]byte, sha256.Size)
	if _, err := io.ReadFull(nc, proof); err != nil {
		return fmt.Errorf("%w: the hub closed the connection instead of proving the key: a wrong job key, or a hub dropping handshakes under a flood (%v)", ErrAuth, err)
	}
	if !hmac.Equal(proof, mac(key, "rankhub server", nonceC, nonceS)) {
		return fmt.Errorf("%w: the hub does not know the job key", ErrAuth)
	}
	return nil
}

// readHello reads the listener's challenge and returns its nonce.
func readHello(nc net.Conn) ([]byte, error) {
	hello := make([]byte, len(authMagic)+nonceSize)
	if _, err := io.ReadFull(nc, hello); err != nil {
		return nil, fmt.Errorf("%w: reading server challenge: %v", ErrAuth, err)
	}
	if !bytes.Equal(hello[:len(authMagic)], authMagic) {
		return nil, fmt.Errorf("%w: not a rankhub hub (bad greeting %q)", ErrAuth, printable(hello[:len(authMagic)]))
	}
	return hello[len(authMagic):], nil
}

func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		out[i] = c
	}
	return string(out)
}
