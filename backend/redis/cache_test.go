package redis

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/srsproxy/srsproxy/srs"
)

func testCache(t *testing.T) *Cache {
	t.Helper()
	addr := os.Getenv("SRS_TEST_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "srstest-" + hex.EncodeToString(b)
	c, err := New(Options{Addrs: []string{addr}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("redis at %s: %v", addr, err)
	}
	t.Cleanup(func() {
		keys, _ := c.rdb.Keys(ctx, prefix+":*").Result()
		if len(keys) > 0 {
			c.rdb.Del(ctx, keys...)
		}
		c.Close()
	})
	return c
}

func card(q, subject string, due int64) srs.Card {
	return srs.Card{
		Season: "SEASON-2026", Player: "p1", QuestionID: q, Subject: subject, Topic: "t", Stage: "s",
		Schedule: srs.Schedule{State: srs.StateReview, Stability: 1.0 / 3, Difficulty: 5.25, Due: due, LastReview: due - 86400000, Reps: 3, Lapses: 1},
	}
}

// testHeader is a header of a fixed epoch and base, with no labels.
func testHeader() *header { return newHeader("EPOCH-01", 1_764_000_000_000) }

func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	h := testHeader()
	for _, c := range []srs.Card{
		card("q1", "math", 1_764_000_000_000),
		{Season: "S", Player: "p", QuestionID: "q", Schedule: srs.Schedule{LastID: 1<<64 - 1, Recall: 0.25}},
		{Season: "S", Player: "p", QuestionID: "q", Schedule: srs.Schedule{Due: 5}}, // blank new card
		{Season: "S", Player: "p", QuestionID: "q", Schedule: srs.Schedule{State: srs.StateLearning, Step: 200, Due: 9, LastReview: 3, Reps: 1}},
		card("q2", "", -5),
	} {
		var missing []string
		at := h.positions(labelsOf(c), map[string]int{}, &missing)
		if err := h.add(missing); err != nil {
			t.Fatal(err)
		}
		v, err := encodeRecord(h, at, c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRecord(h, c.Season, c.Player, c.QuestionID, v)
		if err != nil {
			t.Fatal(err)
		}
		if got != c {
			t.Errorf("round trip: got %+v want %+v", got, c)
		}
	}
	again, err := decodeHeader(h.field(), h.dict)
	if err != nil || again.epoch != h.epoch || again.base != h.base || !slices.Equal(again.labels, h.labels) {
		t.Fatalf("header round trip: %+v %v", again, err)
	}
	if _, err := decodeRecord(h, "s", "p", "q", []byte{0, 0, 0, 0x40, 5}); err == nil {
		t.Error("truncated value decoded without error")
	}
	if _, err := decodeRecord(h, "s", "p", "q", []byte{0, 99, 0, 0, 5}); err == nil {
		t.Error("a record naming a label the header lacks decoded without error")
	}
}

// The record sizes docs/CORE.md states: a reviewed card with labels and a
// blank new card; with a 16-byte UUID field a reviewed card stays under 64
// bytes of listpack.
func TestRecordSize(t *testing.T) {
	t.Parallel()
	h := testHeader()
	if err := h.add([]string{"mathematics", "fractions", "grade-7"}); err != nil {
		t.Fatal(err)
	}
	c := card("q", "mathematics", h.base+40*86400000)
	c.Topic, c.Stage = "fractions", "grade-7"
	c.LastID, c.Recall = srs.ReviewHash("review-1"), 0.8
	v, err := encodeRecord(h, [3]int{0, 1, 2}, c)
	if err != nil || len(v) != 43 {
		t.Fatalf("reviewed card: %d bytes (%v), want 43", len(v), err)
	}
	imported := c // a card never reviewed through this release: no id hash, no recall
	imported.LastID, imported.Recall = 0, 0
	if v, err := encodeRecord(h, [3]int{0, 1, 2}, imported); err != nil || len(v) != 31 {
		t.Fatalf("card without a last review id: %d bytes (%v), want 31", len(v), err)
	}
	blank := srs.Card{Schedule: srs.Schedule{Due: h.base + 1000}}
	if v, err := encodeRecord(h, [3]int{}, blank); err != nil || len(v) != 6 {
		t.Fatalf("blank new card: %d bytes (%v), want 6", len(v), err)
	}
}

func TestDueLoadSwap(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	const now = 1_764_000_000_000

	res, err := c.Due(ctx, "SEASON-2026", "p1", "", now, 20)
	if err != nil || res.Loaded {
		t.Fatalf("unloaded user: %+v %v", res, err)
	}
	cards := []srs.Card{
		card("q1", "math", now-3000), card("q2", "bio", now-2000), card("q3", "math", now-1000),
		card("q4", "math", now+1000), card("q5", "bio", now-5000),
	}
	if ok, err := c.Load(ctx, "SEASON-2026", "p1", cards); err != nil || !ok {
		t.Fatalf("load: %v %v", ok, err)
	}
	if ok, err := c.Load(ctx, "SEASON-2026", "p1", cards[:1]); err != nil || ok {
		t.Fatalf("second load must not overwrite: %v %v", ok, err)
	}
	res, err = c.Due(ctx, "SEASON-2026", "p1", "", now, 2)
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 4 || len(res.Cards) != 2 || res.Cards[0].QuestionID != "q5" || res.Cards[1].QuestionID != "q1" {
		t.Fatalf("due: %+v", res)
	}
	if res.NextDue != now+1000 { // q4: the list changes then without any write
		t.Fatalf("NextDue = %d, want q4's due %d", res.NextDue, now+1000)
	}
	res, err = c.Due(ctx, "SEASON-2026", "p1", "math", now, 1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 2 || len(res.Cards) != 1 || res.Cards[0].QuestionID != "q1" || res.Cards[0] != cards[0] {
		t.Fatalf("due math: %+v", res)
	}

	rd, err := c.Read(ctx, "SEASON-2026", "p1", "q1")
	if err != nil || !rd.Loaded || !rd.Found || rd.Card != cards[0] {
		t.Fatalf("read: %+v %v", rd, err)
	}
	r := srs.Review{ID: "rid-1", Season: "SEASON-2026", Player: "p1", QuestionID: "q1", Subject: "math", Grade: srs.Good,
		Before: cards[0].Schedule, After: cards[0].Schedule}
	r.After.Due = now + 86400000
	r.After.Reps++
	r.After.LastID, r.After.Recall = srs.ReviewHash(r.ID), 0.75
	if got, err := c.Swap(ctx, rd.Token, r.Card()); err != nil || got != srs.SwapStored {
		t.Fatalf("swap: %v %v", got, err)
	}
	if got, err := c.Swap(ctx, rd.Token, r.Card()); err != nil || got != srs.SwapConflict {
		t.Fatalf("stale swap: %v %v", got, err)
	}
	rd, err = c.Read(ctx, "SEASON-2026", "p1", "q1")
	if err != nil || rd.Card.Schedule != r.After {
		t.Fatalf("read after swap: %+v %v", rd, err)
	}
	res, _ = c.Due(ctx, "SEASON-2026", "p1", "math", now, 10)
	if res.Total != 1 {
		t.Fatalf("q1 is no longer due: %+v", res)
	}

	if err := c.Invalidate(ctx, "SEASON-2026", "p1"); err != nil {
		t.Fatal(err)
	}
	if rd, _ := c.Read(ctx, "SEASON-2026", "p1", "q1"); rd.Loaded {
		t.Fatal("invalidated user still loaded")
	}
	if got, _ := c.Swap(ctx, "", r.Card()); got != srs.SwapNotLoaded {
		t.Fatalf("swap on unloaded user: %v", got)
	}
}

func TestHalfExpiredIsNotLoaded(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	if _, err := c.Load(ctx, "SEASON-2026", "p2", []srs.Card{card("q1", "m", 1)}); err != nil {
		t.Fatal(err)
	}
	c.rdb.Del(ctx, c.keys("SEASON-2026", "p2")[1])
	res, err := c.Due(ctx, "SEASON-2026", "p2", "", 10, 5)
	if err != nil || res.Loaded {
		t.Fatalf("a card hash without its version must read as not loaded: %+v %v", res, err)
	}
}

func TestEmptyUserIsLoaded(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	if _, err := c.Load(ctx, "SEASON-2026", "p3", nil); err != nil {
		t.Fatal(err)
	}
	res, err := c.Due(ctx, "SEASON-2026", "p3", "", 10, 5)
	if err != nil || !res.Loaded || res.Total != 0 {
		t.Fatalf("empty user: %+v %v", res, err)
	}
	if err := c.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRegistryAndMemory(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	for _, p := range []string{"a", "b", "a"} {
		if _, err := c.Load(ctx, "SEASON-2026-R", p, nil); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.CachedUsers(ctx, []string{"SEASON-2026-R", "SEASON-2026-NONE"})
	if err != nil || got["SEASON-2026-R"] != 2 || len(got) != 1 {
		t.Fatalf("registry: %v %v", got, err)
	}
	if n, err := c.MemoryUsed(ctx); err != nil || n <= 0 {
		t.Fatalf("memory: %d %v", n, err)
	}
}

func TestMemberEncoding(t *testing.T) {
	t.Parallel()
	for _, q := range []string{
		"6f1c2a8e-3b4d-4c5e-9f60-718293a4b5c6", // canonical: 16 bytes in Redis
		"6F1C2A8E-3B4D-4C5E-9F60-718293A4B5C6", // upper case: kept as sent
		"q-101", "", "6f1c2a8e3b4d4c5e9f60718293a4b5c6-xyzw",
		"exactly16bytes!!", // would read as a UUID: escaped
		"\x01seventeen-bytes",
	} {
		m := member(q)
		if got := questionOf(m); got != q {
			t.Errorf("round trip of %q: %q", q, got)
		}
		if q == "6f1c2a8e-3b4d-4c5e-9f60-718293a4b5c6" && len(m) != 16 {
			t.Errorf("canonical UUID %q stored in %d bytes", q, len(m))
		}
	}
	if len(member("6F1C2A8E-3B4D-4C5E-9F60-718293A4B5C6")) != 36 {
		t.Error("a non-canonical UUID must keep its exact bytes")
	}
}

// Cards with UUID question ids go through every script in binary form and
// come back as the ids the client sent.
func TestUUIDQuestionsThroughScripts(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	q1, q2 := "6f1c2a8e-3b4d-4c5e-9f60-718293a4b5c6", "0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9"
	a, b := card(q1, "m", 100), card(q2, "m", 200)
	if _, err := c.Load(ctx, "SEASON-2026", "p1", []srs.Card{a, b}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Due(ctx, "SEASON-2026", "p1", "m", 1000, 10)
	if err != nil || res.Total != 2 || res.Cards[0] != a || res.Cards[1] != b {
		t.Fatalf("due: %+v %v", res, err)
	}
	rd, err := c.Read(ctx, "SEASON-2026", "p1", q2)
	if err != nil || !rd.Found || rd.Card != b {
		t.Fatalf("read: %+v %v", rd, err)
	}
	r := srs.Review{ID: "r", Season: "SEASON-2026", Player: "p1", QuestionID: q2, Subject: "m", Before: b.Schedule, After: b.Schedule}
	r.After.Reps++
	if got, err := c.Swap(ctx, rd.Token, r.Card()); err != nil || got != srs.SwapStored {
		t.Fatalf("swap: %v %v", got, err)
	}
	all, loaded, err := c.UserCards(ctx, "SEASON-2026", "p1")
	if err != nil || !loaded || all[q2].Card.Reps != b.Reps+1 || all[q1].Card != a {
		t.Fatalf("user cards: %+v %v", all, err)
	}
	fields, _ := c.rdb.HKeys(ctx, c.keys("SEASON-2026", "p1")[0]).Result()
	for _, f := range fields {
		if len(f) == 36 {
			t.Fatalf("a UUID question id is stored as text: %q", f)
		}
	}
}

// FuzzDecodeRecord: no input makes the decoders panic, and every record
// they accept re-encodes to a record of the same card.
func FuzzDecodeRecord(f *testing.F) {
	h := testHeader()
	if err := h.add([]string{"math", "t", "s", ""}); err != nil {
		f.Fatal(err)
	}
	for _, c := range []srs.Card{card("q", "math", 5), {Topic: "t", Stage: "s"}, {Schedule: srs.Schedule{Due: 7}}} {
		c.LastID, c.Recall = 42, 0.5
		b, _ := encodeRecord(h, h.positions(labelsOf(c), nil, nil), c)
		f.Add(b, false)
	}
	f.Add([]byte(h.field()+h.dict), true)
	f.Add([]byte{}, false)
	f.Add([]byte{1, 0}, true)
	f.Fuzz(func(t *testing.T, b []byte, asHeader bool) {
		if asHeader {
			if _, err := decodeHeader(string(b[:min(len(b), 10)]), string(b[min(len(b), 10):])); err != nil && !errors.Is(err, errBadValue) {
				t.Fatalf("error %v does not wrap errBadValue", err)
			}
			return
		}
		c, err := decodeRecord(h, "s", "p", "q", b)
		if err != nil {
			if !errors.Is(err, errBadValue) {
				t.Fatalf("error %v does not wrap errBadValue", err)
			}
			return
		}
		at := h.positions(labelsOf(c), nil, nil)
		again, err := encodeRecord(h, at, c)
		if err != nil {
			t.Fatalf("a decoded record does not encode: %+v %v", c, err)
		}
		c2, err := decodeRecord(h, "s", "p", "q", again)
		if err != nil || c2 != c {
			t.Fatalf("%x decodes to %+v, which encodes to %x, which decodes to %+v (%v)", b, c, again, c2, err)
		}
		if third, _ := encodeRecord(h, at, c2); !bytes.Equal(third, again) {
			t.Fatalf("encoding not stable: %x then %x", again, third)
		}
	})
}

// Headers of other formats (release 2's records had no header; a format-2
// or format-1 first byte means a damaged value) are refused with an error,
// never a panic: release 3 keeps its own keys.
func TestOtherFormatsRefused(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"", "\x01\x00\x02\x00", "\x02\x04math\x02\x00", "\x03short"} {
		if _, err := decodeHeader(v, ""); !errors.Is(err, errBadValue) {
			t.Errorf("header %q: %v", v, err)
		}
	}
}
