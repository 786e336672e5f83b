package main

import (
	"crypto/tls"
	"testing"
)

func TestMetricsOptions(t *testing.T) {
	opts := []func(*tls.Config){func(*tls.Config) {}}
	plain := metricsOptions(":8080", false, opts)
	if plain.SecureServing || plain.FilterProvider != nil || len(plain.TLSOpts) != 0 {
		t.Errorf("plain metrics must not carry TLS or auth: %+v", plain)
	}
	secure := metricsOptions(":8443", true, opts)
	if !secure.SecureServing || secure.FilterProvider == nil || len(secure.TLSOpts) != 1 {
		t.Errorf("secure metrics need HTTPS, the auth filter and the TLS options: %+v", secure)
	}
}
