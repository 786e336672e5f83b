package main

import (
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestJudgeSelftest(t *testing.T) {
	sts := schema.GroupResource{Group: "apps", Resource: "statefulsets"}
	const hook = "validate.statefulsets.pdguard.io"
	denied := func(msg string) error {
		return apierrors.NewForbidden(sts, "pdguard-selftest", errors.New(msg))
	}
	for name, tc := range map[string]struct {
		err       error
		pass      bool
		transient bool
		want      string
	}{
		"pdguard refuses the bundle": {
			err:  denied(`admission webhook "` + hook + `" denied the request: pdguard: [bundled-config-and-version] pdguard refused StatefulSet default/pdguard-selftest`),
			pass: true, want: "bundled-config-and-version",
		},
		"admitted": {err: nil, want: "without pdguard refusing it"},
		"pdguard unreachable": {
			err:       apierrors.NewInternalError(errors.New(`failed calling webhook "` + hook + `": connection refused`)),
			transient: true, want: "could not call pdguard",
		},
		"mutating webhook silent": {
			err:  denied(`admission webhook "` + hook + `" denied the request: pdguard blocked this change for 2 reasons: (1) ... without a canary partition (0, at least 1 needed)`),
			want: "the mutating webhook (failurePolicy Ignore) did not answer",
		},
		"another webhook refuses": {
			err:  denied(`admission webhook "validate.other.example.com" denied the request: no`),
			want: "not by pdguard's validating webhook " + hook,
		},
		"RBAC not there yet": {
			err:       denied(`User "system:serviceaccount:pdguard-system:pdguard-selftest" cannot update resource "statefulsets"`),
			transient: true, want: "before admission",
		},
	} {
		t.Run(name, func(t *testing.T) {
			msg, err := judgeSelftest("default", "pdguard-selftest", hook, tc.err)
			if (err == nil) != tc.pass {
				t.Fatalf("pass = %v, want %v (err %v)", err == nil, tc.pass, err)
			}
			var tr *transientError
			if errors.As(err, &tr) != tc.transient {
				t.Errorf("transient = %v, want %v", !tc.transient, tc.transient)
			}
			got := msg
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("answer %q lacks %q", got, tc.want)
			}
		})
	}
}
