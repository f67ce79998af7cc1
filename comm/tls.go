package comm

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"time"
)

// TLSMode says whether a listener's TCP socket speaks TLS 1.3. Unix sockets
// never do: they do not leave the host and their peers are checked by the
// job key alone.
type TLSMode int

const (
	// TLSOff: plain connections only (the zero value).
	TLSOff TLSMode = iota
	// TLSAllow: TLS and plain peers alike; a peer chooses by dialing with
	// Options.TLSFingerprint or without it.
	TLSAllow
	// TLSRequire: plain peers are refused.
	TLSRequire
)

func (m TLSMode) String() string {
	switch m {
	case TLSOff:
		return "off"
	case TLSAllow:
		return "allow"
	case TLSRequire:
		return "require"
	}
	return fmt.Sprintf("TLSMode(%d)", int(m))
}

// tlsRecordHandshake is the first byte of a TLS ClientHello record; a plain
// peer's first byte is the 'R' of its greeting.
const tlsRecordHandshake = 0x16

// NewCertificate returns a fresh self-signed ECDSA P-256 certificate and its
// fingerprint (Fingerprint). Peers pin the fingerprint (from the 0600
// connection file): no certificate authority, host name or date is checked.
func NewCertificate() (tls.Certificate, string, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("comm: TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("comm: TLS certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "rankhub job"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("comm: TLS certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, Fingerprint(der), nil
}

// Fingerprint is the hex SHA-256 of a certificate's DER bytes.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func serverTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
}

// clientTLSConfig accepts exactly the certificate whose fingerprint is fp.
func clientTLSConfig(fp string) (*tls.Config, error) {
	want, err := hex.DecodeString(strings.TrimSpace(fp))
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("comm: TLS fingerprint %q: want %d hex digits (SHA-256)", fp, 2*sha256.Size)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The chain is not checked against authorities: the pinned
		// fingerprint below is the whole verification.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("comm: TLS: the listener sent no certificate")
			}
			if got := Fingerprint(cs.PeerCertificates[0].Raw); got != hex.EncodeToString(want) {
				return fmt.Errorf("comm: TLS: the listener's certificate fingerprint %s is not the pinned %s", got, hex.EncodeToString(want))
			}
			return nil
		},
	}, nil
}

// prefixConn gives back bytes already read before reading on.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// handshake authenticates a peer accepted on a listening socket (tcp: a
// TCP one) and returns the connection to frame on: the accepted one, or
// TLS over it. Nothing but the handshake is read before it succeeds.
func (l *Listener) handshake(p *pending, tcp bool) (net.Conn, error) {
	p.SetDeadline(time.Now().Add(l.opts.HandshakeTimeout))
	defer p.SetDeadline(time.Time{})
	nonceS, err := serverHello(p)
	if err != nil {
		return nil, err
	}
	var first [1]byte
	if _, err := io.ReadFull(p, first[:]); err != nil {
		return nil, fmt.Errorf("%w: reading client proof: %v", ErrAuth, err)
	}
	rest := &prefixConn{Conn: p, pre: first[:]}
	if tcp && l.tls != nil && first[0] == tlsRecordHandshake {
		tc := tls.Server(rest, l.tls)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("%w: TLS: %v", ErrAuth, err)
		}
		nonce, err := serverHello(tc)
		if err != nil {
			return nil, err
		}
		if err := serverVerify(tc, l.key, nonce); err != nil {
			return nil, err
		}
		return tc, nil
	}
	if tcp && l.tlsMode == TLSRequire {
		return nil, fmt.Errorf("%w: plain connection refused: this listener requires TLS", ErrAuth)
	}
	if err := serverVerify(rest, l.key, nonceS); err != nil {
		return nil, err
	}
	return p.Conn, nil
}

// startTLS is the dialer's side: it reads the listener's plain challenge
// and starts TLS, accepting only the certificate pinned by fp.
func startTLS(ctx context.Context, nc net.Conn, fp string, timeout time.Duration) (net.Conn, error) {
	cfg, err := clientTLSConfig(fp)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(timeout))
	defer nc.SetDeadline(time.Time{})
	if _, err := readHello(nc); err != nil {
		return nil, err
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("%w: TLS: %v", ErrAuth, err)
	}
	return tc, nil
}
