package redis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/caddymodule/message"
)

func TestURLCarriesUserPasswordAndDatabase(t *testing.T) {
	srv := startRedis(t, "--user", "comet", "on", ">s3cret", "~*", "&*", "+@all")
	url := "redis://comet:s3cret@" + srv.addr() + "/3"
	s, got := newStore(t, srv, storeOptions{name: "acl", url: url})
	m := appendOK(t, s, "", draft("u", "hi"))[0]
	got.waitFor(t, "the message", func(got []*message.Message) bool { return len(got) == 1 && got[0].ID == m.ID })

	db3 := goredis.NewClient(&goredis.Options{Addr: srv.addr(), DB: 3})
	defer db3.Close()
	if n, err := db3.Exists(context.Background(), s.keys.meta()).Result(); err != nil || n != 1 {
		t.Fatalf("meta key in database 3: %d (%v)", n, err)
	}
	clients, _ := srv.do("CLIENT", "LIST").(string)
	if !strings.Contains(clients, "user=comet") || !strings.Contains(clients, "db=3") {
		t.Fatalf("no connection of user comet on db 3 in:\n%s", clients)
	}

	wrong, _ := newStore(t, srv, storeOptions{name: "acl", url: "redis://comet:wrong@" + srv.addr() + "/3"})
	if _, _, err := wrong.Append(context.Background(), []message.Draft{draft("u", "no")}, ""); err == nil {
		t.Fatal("append with a wrong password succeeded")
	}
}

func TestURLWithRedissSpeaksTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSignedCert(t, dir)
	port := freePort(t)
	srv := startRedis(t, "--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-auth-clients", "no")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	// The test's certificate is its own; skip_verify keeps the handshake
	// but not the chain check. A deployment uses a certificate its system
	// trusts.
	s, got := newStore(t, srv, storeOptions{name: "tls", url: "rediss://" + addr + "/0?skip_verify=true"})
	m := appendOK(t, s, "", draft("tls", "hi"))[0]
	got.waitFor(t, "the message over TLS", func(got []*message.Message) bool { return len(got) == 1 && got[0].ID == m.ID })

	plain, _ := newStore(t, srv, storeOptions{name: "tls", url: "redis://" + addr + "/0"})
	if _, err := plain.Head(context.Background()); err == nil {
		t.Fatal("a plain-text client was served on the TLS port")
	}
}

func TestMalformedURLFailsNew(t *testing.T) {
	for _, url := range []string{"", "http://127.0.0.1:6379", "redis://127.0.0.1:6379/notanumber", "redis://127.0.0.1:6379/0?no_such_option=1"} {
		if s, err := New(context.Background(), Options{URL: url}); err == nil {
			s.Close()
			t.Errorf("New(%q) succeeded", url)
		}
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
