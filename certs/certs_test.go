package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIssue(t *testing.T) {
	tests := map[string]struct {
		req     Request
		wantErr string
	}{
		"a certificate for loopback and a service name verifies against its CA": {
			req: Request{DNSNames: []string{"pdguard.pdguard-system.svc"}, IPAddresses: []string{"127.0.0.1"}},
		},
		"a request with no names is refused": {
			req:     Request{},
			wantErr: "at least one DNS name or IP address",
		},
		"an IP address that is not one is named in the error": {
			req:     Request{IPAddresses: []string{"localhost"}},
			wantErr: `"localhost" is not an IP address`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := Issue(tc.req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Issue() error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Issue() error = %v", err)
			}
			if _, err := tls.X509KeyPair(b.CertPEM, b.KeyPEM); err != nil {
				t.Fatalf("certificate and key do not match: %v", err)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(b.CAPEM) {
				t.Fatal("CA PEM holds no certificate")
			}
			block, _ := pem.Decode(b.CertPEM)
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			for _, host := range append(tc.req.DNSNames, tc.req.IPAddresses...) {
				if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
					t.Errorf("certificate does not verify for %s: %v", host, err)
				}
			}
		})
	}
}

func TestWriteDir(t *testing.T) {
	b, err := Issue(Request{IPAddresses: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "serving-certs")
	if err := b.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)); err != nil {
		t.Fatalf("written pair does not load: %v", err)
	}
	info, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", info.Mode().Perm())
	}
}
