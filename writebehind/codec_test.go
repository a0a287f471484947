package writebehind

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// appendReviewV1 is release 1's wire encoding, written out by hand: the
// schedules have no LastID and Recall.
func appendReviewV1(dst []byte, r srs.Review) []byte {
	str := func(s string) { dst = append(binary.AppendUvarint(dst, uint64(len(s))), s...) }
	for _, s := range []string{r.ID, r.Season, r.Player, r.QuestionID, r.Subject, r.Topic, r.Stage} {
		str(s)
	}
	for _, v := range []int64{int64(r.Grade), r.ReviewedAt, r.DurationMS, int64(r.ElapsedDays)} {
		dst = binary.AppendVarint(dst, v)
	}
	for _, s := range []srs.Schedule{r.Before, r.After} {
		dst = binary.AppendVarint(dst, int64(s.State))
		dst = binary.AppendVarint(dst, int64(s.Step))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.Stability))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.Difficulty))
		for _, v := range []int64{s.Due, s.LastReview, int64(s.Reps), int64(s.Lapses)} {
			dst = binary.AppendVarint(dst, v)
		}
	}
	str(r.Sidecar)
	return dst
}

// Payload versions 1 (plain) and 2 (held) are release 1's, with wire v1.
func TestDecodeReleaseOnePayloads(t *testing.T) {
	t.Parallel()
	r := testReview(7)
	for _, tt := range []struct {
		version byte
		held    bool
	}{{payloadV1, false}, {payloadHeldV1, true}} {
		p := binary.AppendVarint([]byte{tt.version}, 1_767_225_600_123)
		p = appendReviewV1(p, r)
		at, got, held, err := decodeEntry(p)
		if err != nil || at != 1_767_225_600_123 || held != tt.held || got != asV1(r) {
			t.Fatalf("version %d: decodeEntry = %d, %+v, %v, %v", tt.version, at, got, held, err)
		}
	}
	if _, _, _, err := decodeEntry([]byte{9, 0}); err == nil {
		t.Fatal("unknown payload version decoded")
	}
}

// testdata/release1 is a queue directory written by release 1's code (the
// commit before payload version 3), frozen: entries 1-2 drained, 3 plain,
// 4 held and confirmed, 5 held and cancelled, 8 held with no record, 9
// plain. Release 2 opens it, drains it and appends after it.
func TestOpenReleaseOneQueue(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"00000000000000000001.wal", "drained"} {
		b, err := os.ReadFile(filepath.Join("testdata", "release1", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The fixture's frames hold exactly the hand-made v1 encoding.
	seg, _ := os.ReadFile(filepath.Join(dir, "00000000000000000001.wal"))
	if want := appendReviewV1(nil, testReview(2)); !bytes.Contains(seg, want) {
		t.Fatal("the fixture does not hold release 1's encoding of testReview(2)")
	}
	rep, err := Check(dir)
	if err != nil || !rep.Opens || rep.Entries != 4 || rep.Unsettled != 1 || rep.Drained != 2 || len(rep.Damage) != 0 {
		t.Fatalf("Check = %+v, %v", rep, err)
	}

	q := openQueue(t, Config{Dir: dir, BatchWait: time.Millisecond})
	un := q.Unsettled()
	if len(un) != 1 || un[8] != asV1(testReview(5)) {
		t.Fatalf("Unsettled = %v, want entry 8 = testReview(5)", un)
	}
	r2 := testReview(2)
	if got, ok := q.PendingReview(r2.Season, r2.Player, r2.QuestionID, r2.ID); !ok || got != asV1(r2) {
		t.Fatalf("PendingReview = %+v, %v", got, ok)
	}
	store := &memStore{}
	q.Start(context.Background(), store)
	if err := q.Release(8); err != nil {
		t.Fatal(err)
	}
	next := appendDurable(t, q, 20, 1)[0] // version 3 after versions 1 and 2
	flush(t, q)
	equalReviews(t, store.reviews(), []srs.Review{asV1(testReview(2)), asV1(testReview(3)), asV1(testReview(5)), asV1(testReview(6)), next})
}
