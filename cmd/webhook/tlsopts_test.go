package main

import (
	"crypto/tls"
	"slices"
	"testing"
)

func TestTLSOptions(t *testing.T) {
	for _, tc := range []struct {
		http2 bool
		want  []string
	}{
		{true, []string{"h2", "http/1.1"}},
		{false, []string{"http/1.1"}},
	} {
		// controller-runtime's webhook server starts from NextProtos h2 only.
		c := &tls.Config{NextProtos: []string{"h2"}}
		for _, opt := range tlsOptions(tc.http2) {
			opt(c)
		}
		if !slices.Equal(c.NextProtos, tc.want) || c.MinVersion != tls.VersionTLS12 {
			t.Errorf("http2=%v: NextProtos %q MinVersion %#x, want %q and TLS 1.2", tc.http2, c.NextProtos, c.MinVersion, tc.want)
		}
	}
}
