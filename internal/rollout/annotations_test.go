package rollout

import (
	"strings"
	"testing"
)

func TestEveryAnnotationKeyHasThePrefix(t *testing.T) {
	for _, k := range []string{CanaryAnnotation, ReplaceProfileAnnotation, OverrideReasonAnnotation, OverrideUsedAnnotation, EnforcementAnnotation, AutoPromoteAnnotation} {
		if !strings.HasPrefix(k, AnnotationPrefix) {
			t.Errorf("%s does not start with %s: the caches would drop it", k, AnnotationPrefix)
		}
	}
}
