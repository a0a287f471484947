package dirtyset

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMarksSurviveReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "b", "c"} {
		if err := s.Mark("SEASON-2026", p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Clean("SEASON-2026", "b"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A torn last line (crash mid-write) is ignored.
	f, _ := os.OpenFile(filepath.Join(dir, FileName), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("+SEASON-2026\tz")
	f.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := [][2]string{{"SEASON-2026", "a"}, {"SEASON-2026", "c"}}
	if got := s.Marked(); !slices.Equal(got, want) {
		t.Fatalf("marked after reopen: %v, want %v", got, want)
	}
}

func TestDamageIsAnError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), []byte(header+"\nXbad\n"), 0o600)
	if _, err := Open(dir); err == nil {
		t.Fatal("a damaged line opened without error")
	}
	os.WriteFile(filepath.Join(dir, FileName), []byte("srsproxy-dirty 9\n"), 0o600)
	if _, err := Open(dir); err == nil {
		t.Fatal("an unknown format opened without error")
	}
}
