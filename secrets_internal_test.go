package meterbill

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestSecretsRedactThemselves: the type holding the signing secrets implements every interface
// through which fmt and slog print a value, and each prints a count, never a secret. The
// black-box side (a Handler under every verb, logs, errors) is in hostile_test.go.
func TestSecretsRedactThemselves(t *testing.T) {
	list := []string{"whsec_internal_first_000", "whsec_internal_second_00"}
	s := newSecrets(list)
	list[0] = "changed" // NewHandler's caller keeps its slice; the handler keeps its copy
	if got := (*s.list)[0]; got != "whsec_internal_first_000" {
		t.Errorf("secrets share the caller's slice: %q", got)
	}
	var (
		_ slog.LogValuer = s
		_ fmt.Stringer   = s
		_ fmt.GoStringer = s
		_ fmt.Formatter  = s
		_ slog.LogValuer = *s
		_ fmt.Formatter  = *s
	)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "secrets", s)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "secrets", s)
	texts := []string{s.LogValue().String(), s.String(), s.GoString(), logs.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		texts = append(texts, fmt.Sprintf(verb, s), fmt.Sprintf(verb, *s), fmt.Sprintf(verb, struct{ s *secrets }{s}))
	}
	for _, text := range texts {
		if strings.Contains(text, "whsec_") || strings.Contains(text, "internal_") {
			t.Errorf("a secret leaks: %s", text)
		}
	}
	if got, want := s.String(), "[2 redacted secrets]"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
