package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pdguard/pdguard/certs"
)

func newCertsCommand() *cobra.Command {
	var (
		dir      string
		dnsNames []string
		ips      []string
		validity time.Duration
	)
	cmd := &cobra.Command{
		Use:   "certs --dir DIR [--dns NAME]... [--ip IP]...",
		Short: "Issue a CA and a serving certificate for the webhook where cert-manager is not installed",
		Long: `certs writes ca.crt, tls.crt and tls.key into --dir. Serve with --cert-dir DIR and put the
base64 of ca.crt in the webhook configurations' caBundle. With cert-manager installed, the
chart issues the certificate instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return badInput(errors.New("--dir is required"))
			}
			b, err := certs.Issue(certs.Request{DNSNames: dnsNames, IPAddresses: ips, Validity: validity})
			if err != nil {
				return badInput(err)
			}
			if err := b.WriteDir(dir); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "wrote %s/{%s,%s,%s}\n", dir, certs.CAFile, certs.CertFile, certs.KeyFile)
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write the certificate files into")
	cmd.Flags().StringSliceVar(&dnsNames, "dns", nil, "DNS name the certificate covers (repeat), e.g. pdguard.pdguard-system.svc")
	cmd.Flags().StringSliceVar(&ips, "ip", nil, "IP address the certificate covers (repeat), e.g. 127.0.0.1")
	cmd.Flags().DurationVar(&validity, "validity", 365*24*time.Hour, "how long the certificates are valid")
	return cmd
}
