// Package certs issues the webhook's serving certificate where cert-manager is not running:
// the local demo, the integration and end-to-end tests, and `webhook certs` for a
// hand-run install. Certificates are described with cert-manager's own Certificate spec
// and built with its pki package, so a local certificate has the same shape as the one
// cert-manager issues from the chart.
package certs

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/cert-manager/cert-manager/pkg/util/pki"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// File names inside a cert dir, as controller-runtime's webhook server and cert-manager's
// Secret both use them.
const (
	CAFile   = "ca.crt"
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
)

// Request names what the serving certificate must cover.
type Request struct {
	CommonName  string
	DNSNames    []string
	IPAddresses []string
	Validity    time.Duration
}

// Bundle is a CA and a serving certificate signed by it, PEM encoded.
type Bundle struct {
	CAPEM   []byte
	CertPEM []byte
	KeyPEM  []byte
}

// Issue makes a new self-signed CA and a serving certificate for req signed by that CA.
func Issue(req Request) (*Bundle, error) {
	if len(req.DNSNames) == 0 && len(req.IPAddresses) == 0 {
		return nil, errors.New("certs: a serving certificate needs at least one DNS name or IP address")
	}
	for _, ip := range req.IPAddresses {
		if net.ParseIP(ip) == nil {
			return nil, fmt.Errorf("certs: %q is not an IP address", ip)
		}
	}
	validity := req.Validity
	if validity <= 0 {
		validity = 365 * 24 * time.Hour
	}

	caSpec := certificate("pdguard-ca", validity, true, nil, nil)
	caKey, caCert, caPEM, err := selfSign(caSpec)
	if err != nil {
		return nil, fmt.Errorf("certs: issuing CA: %w", err)
	}

	cn := req.CommonName
	if cn == "" {
		cn = "pdguard-webhook"
	}
	servingSpec := certificate(cn, validity, false, req.DNSNames, req.IPAddresses)
	servingKey, err := pki.GeneratePrivateKeyForCertificate(servingSpec)
	if err != nil {
		return nil, fmt.Errorf("certs: generating serving key: %w", err)
	}
	template, err := templateFor(servingSpec, servingKey)
	if err != nil {
		return nil, err
	}
	certPEM, _, err := pki.SignCertificate(template, caCert, servingKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("certs: signing serving certificate: %w", err)
	}
	keyPEM, err := pki.EncodePrivateKey(servingKey, cmapi.PKCS8)
	if err != nil {
		return nil, fmt.Errorf("certs: encoding serving key: %w", err)
	}
	return &Bundle{CAPEM: caPEM, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// WriteDir writes the bundle as ca.crt, tls.crt and tls.key into dir, creating it.
// The key is written last and renamed into place so a watching server never reads a
// certificate with a mismatched key.
func (b *Bundle) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("certs: creating %s: %w", dir, err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{{CAFile, b.CAPEM, 0o644}, {CertFile, b.CertPEM, 0o644}, {KeyFile, b.KeyPEM, 0o600}}
	for _, f := range files {
		tmp := filepath.Join(dir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, f.mode); err != nil {
			return fmt.Errorf("certs: writing %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			return fmt.Errorf("certs: writing %s: %w", f.name, err)
		}
	}
	return nil
}

func certificate(cn string, validity time.Duration, isCA bool, dns, ips []string) *cmapi.Certificate {
	usages := []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageKeyEncipherment, cmapi.UsageServerAuth}
	if isCA {
		usages = []cmapi.KeyUsage{cmapi.UsageCertSign, cmapi.UsageDigitalSignature}
	}
	return &cmapi.Certificate{Spec: cmapi.CertificateSpec{
		CommonName:  cn,
		DNSNames:    dns,
		IPAddresses: ips,
		IsCA:        isCA,
		Duration:    &metav1.Duration{Duration: validity},
		Usages:      usages,
		PrivateKey:  &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256},
	}}
}

func selfSign(spec *cmapi.Certificate) (crypto.Signer, *x509.Certificate, []byte, error) {
	key, err := pki.GeneratePrivateKeyForCertificate(spec)
	if err != nil {
		return nil, nil, nil, err
	}
	template, err := templateFor(spec, key)
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM, cert, err := pki.SignCertificate(template, template, key.Public(), key)
	if err != nil {
		return nil, nil, nil, err
	}
	return key, cert, certPEM, nil
}

func templateFor(spec *cmapi.Certificate, key crypto.Signer) (*x509.Certificate, error) {
	template, err := pki.CertificateTemplateFromCertificate(spec)
	if err != nil {
		return nil, fmt.Errorf("certs: building template for %q: %w", spec.Spec.CommonName, err)
	}
	template.PublicKey = key.Public()
	if template.SerialNumber == nil {
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		if err != nil {
			return nil, fmt.Errorf("certs: serial number: %w", err)
		}
		template.SerialNumber = serial
	}
	return template, nil
}
