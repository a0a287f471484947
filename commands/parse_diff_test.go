package commands

import (
	"fmt"
	"strings"
	"testing"

	"github.com/srsproxy/srsproxy/srs"
)

// sameParse checks that the parsers return what the reference parsers in
// parse_ref_test.go return: the same request, or the same error message.
func sameParse(t *testing.T, args [][]byte) {
	t.Helper()
	errText := func(err error) string {
		if err == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%T %s", err, err)
	}
	if len(args) == 0 {
		return
	}
	r, err := ParseReview(args)
	wr, werr := refParseReview(args)
	if errText(err) != errText(werr) {
		t.Fatalf("ParseReview(%q): error %s, want %s", args, errText(err), errText(werr))
	}
	if err == nil && fmt.Sprintf("%v", deref(r)) != fmt.Sprintf("%v", deref(wr)) {
		t.Fatalf("ParseReview(%q) = %+v, want %+v", args, deref(r), deref(wr))
	}
	if err == nil && ((r.Subject == nil) != (wr.Subject == nil) || (r.Topic == nil) != (wr.Topic == nil) || (r.Stage == nil) != (wr.Stage == nil)) {
		t.Fatalf("ParseReview(%q): labels given differ", args)
	}
	d, err := ParseDue(args)
	wd, werr := refParseDue(args)
	if errText(err) != errText(werr) || err == nil && d != wd {
		t.Fatalf("ParseDue(%q) = %+v, %s; want %+v, %s", args, d, errText(err), wd, errText(werr))
	}
	c, err := ParseCard(args)
	wc, werr := refParseCard(args)
	if errText(err) != errText(werr) || err == nil && c != wc {
		t.Fatalf("ParseCard(%q) = %+v, %s; want %+v, %s", args, c, errText(err), wc, errText(werr))
	}
}

func splitArgs(s string) [][]byte {
	parts := strings.Split(s, "\x00")
	args := make([][]byte, len(parts))
	for i, p := range parts {
		args[i] = []byte(p)
	}
	return args
}

var diffSeeds = []string{
	"SRS.REVIEW\x00p\x00SEASON-2026\x00q\x003\x00AT\x001",
	"srs.review\x00p\x00SEASON-2026-A_1\x00q\x00correct\x001\x00ms\x0010\x00attempts\x002\x00id\x00r1",
	"SRS.REVIEW\x00p\x00SEASON-2026\x00q\x00CORRECT\x001\x00MS\x0010\x00ATTEMPTS",
	"SRS.REVIEW\x00p\x00SEASON-2026\x00q\x00+4\x00Subject\x00\x00topic\x00t\x00STAGE\x00s\x00SUBJECT\x00m",
	"SRS.REVIEW\x00p\x00SEASON-2026\x00q\x0003\x00ſubject\x00x\x00DURATİON\x001",
	"SRS.REVIEW\x00p\x00SEASON-2026\x00q\x003\x00DURATION\x00-0\x00AT\x009007199254740992",
	"SRS.REVIEW\x00p\x00SEASON-2026\x00q\x00CORRECT\x00 1\x00MS\x001",
	"SRS.REVIEW\x00ünï\x00SEASON-2026\x00q\x00\xff\x00SUBJECT\x00a\x7f",
	"SRS.REVIEW\x00p\tx\x00SEASON-2026\x00q\x003",
	"SRS.REVIEW\x00p\x00SEASON-2026\n\x00q\x003",
	"SRS.DUE\x00p\x00SEASON-2026\x00LIMIT\x0050\x00SUBJECT\x00",
	"SRS.DUE\x00p\x00SEASON-2026\x00limit\x00051\x00at\x001_000",
	"SRS.DUE\x00p\x00SEASON-2026\x00KELVIN\x00x\x00LIMIT",
	"SRS.DUE\x00\x00SEASON-2026",
	"SRS.DUE\x00p\x00season-2026",
	"SRS.DUE\x00p\x00SEASON-2026-" + strings.Repeat("X", 40),
	"SRS.CARD\x00p\x00SEASON-2026\x00q\x00extra",
	"SRS.CARD\x00p\x00SEASON-2026",
	// issue 12: options given twice, MS/ATTEMPTS out of place, C1 controls
	"SRS.REVIEW\x00p\x00SEASON-2026\x00q\x003\x00AT\x001\x00at\x002",
	"SRS.REVIEW\x00p\x00SEASON-2026\x00q\x00CORRECT\x001\x00MS\x005\x00ATTEMPTS\x001\x00ATTEMPTS\x002",
	"SRS.REVIEW\x00p\x00SEASON-2026\x00q\x00CORRECT\x001\x00MS\x005\x00ID\x00r\x00attempts\x002",
	"SRS.REVIEW\x00p\x00SEASON-2026\x00q\x004\x00MS\x005",
	"SRS.REVIEW\x00p\x00SEASON-2026\x00q\x00CORRECT\x000\x00MS\x005\x00MS\x005",
	"SRS.REVIEW\x00p\u0085\x00SEASON-2026\x00q\x003\x00SUBJECT\x00\u009f",
	"SRS.DUE\x00p\x00SEASON-2026\x00LIMIT\x001\x00SUBJECT\x00\x00subject\x00m",
	"SRS.DUE\x00p\x00SEASON-2026\x00SUBJECT\x00\u0080",
}

func TestParseMatchesReference(t *testing.T) {
	t.Parallel()
	for _, s := range diffSeeds {
		sameParse(t, splitArgs(s))
	}
	long := strings.Repeat("p", MaxIDLen)
	sameParse(t, splitArgs("SRS.DUE\x00"+long+"\x00SEASON-2026"))
	sameParse(t, splitArgs("SRS.DUE\x00"+long+"p\x00SEASON-2026"))
}

// FuzzParseMatchesReference runs the parsers against the reference ones.
func FuzzParseMatchesReference(f *testing.F) {
	for _, s := range diffSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { sameParse(t, splitArgs(s)) })
}

// FuzzInternSeason checks the season cache against srs.ValidSeasonName.
func FuzzInternSeason(f *testing.F) {
	for _, s := range []string{"SEASON-2026", "SEASON-2026-A_1", "SEASON-202", "SEASON-2026-", "SEASON-2026\n", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for range 2 { // a miss, then a hit
			got, ok := internSeason([]byte(s))
			if want := srs.ValidSeasonName(s); ok != want || ok && got != s {
				t.Fatalf("internSeason(%q) = %q, %v; want valid=%v", s, got, ok, want)
			}
		}
	})
}
