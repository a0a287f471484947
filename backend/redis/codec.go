package redis

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/google/uuid"

	"github.com/srsproxy/srsproxy/srs"
)

// The cached card record is one binary string per card, the value of the
// user's card hash (docs/CORE.md §1). Layout (format 2):
//
//	[0]      format version
//	[1]      subject length n, then n subject bytes (first, so the due script
//	         can filter by subject with one string comparison)
//	         state u8, step u8, stability f64, difficulty f64 (little endian),
//	         due, last review (zig-zag varints, unix ms), reps, lapses (uvarints),
//	         last review id hash u64, recall f32 (little endian),
//	         topic and stage (u8 length + bytes)
//
// Format 1 (release 1) had no id hash and no recall; release 2 keeps its
// records under other key names (keys), so it never meets one, and refuses
// one as malformed if it does. Strings are capped at 255 bytes by the
// command layer.
const formatVersion = 2

// maxLabel is the longest subject, topic or stage the format can hold.
const maxLabel = math.MaxUint8

var errBadValue = errors.New("malformed cached card")

func appendLabel(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// encodeCard packs the cached part of c (the question id is the hash field).
// Recall is stored as a float32: the engine rounds it so when it computes it.
func encodeCard(c srs.Card) ([]byte, error) {
	for _, s := range [...]string{c.Subject, c.Topic, c.Stage} {
		if len(s) > maxLabel {
			return nil, fmt.Errorf("label %q longer than %d bytes", s[:16], maxLabel)
		}
	}
	if c.State < 0 || c.Step < 0 || c.Step > math.MaxUint8 || c.Reps < 0 || c.Lapses < 0 {
		return nil, fmt.Errorf("card %s/%s: state, step, reps or lapses out of range", c.Player, c.QuestionID)
	}
	b := make([]byte, 0, 56+len(c.Subject)+len(c.Topic)+len(c.Stage))
	b = append(b, formatVersion)
	b = appendLabel(b, c.Subject)
	b = append(b, byte(c.State), byte(c.Step))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.Stability))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.Difficulty))
	b = binary.AppendVarint(b, c.Due)
	b = binary.AppendVarint(b, c.LastReview)
	b = binary.AppendUvarint(b, uint64(c.Reps))
	b = binary.AppendUvarint(b, uint64(c.Lapses))
	b = binary.LittleEndian.AppendUint64(b, c.LastID)
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(c.Recall)))
	b = appendLabel(b, c.Topic)
	b = appendLabel(b, c.Stage)
	return b, nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.err = errBadValue
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) label() string {
	n := int(r.byte())
	if r.err != nil || len(r.b) < n {
		r.err = errBadValue
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) fixed(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = errBadValue
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) float() float64 { return math.Float64frombits(binary.LittleEndian.Uint64(r.fixed(8))) }

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if r.err != nil || n <= 0 {
		r.err = errBadValue
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() int {
	v, n := binary.Uvarint(r.b)
	if r.err != nil || n <= 0 || v > math.MaxInt32 {
		r.err = errBadValue
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

// decodeCard unpacks a cached card value; season, player and question come
// from the key. Any value that is not exactly one format-2 record (empty,
// short, long, another format) is an error wrapping errBadValue.
func decodeCard(season, player, question string, v []byte) (srs.Card, error) {
	r := reader{b: v}
	if f := r.byte(); r.err != nil || f != formatVersion {
		return srs.Card{}, fmt.Errorf("card %s/%s/%s: %w: format %d", season, player, question, errBadValue, f)
	}
	c := srs.Card{Season: season, Player: player, QuestionID: question}
	c.Subject = r.label()
	if st := r.byte(); st <= byte(srs.StateRelearning) {
		c.State = srs.State(st)
	} else if r.err == nil {
		r.err = fmt.Errorf("%w: state %d", errBadValue, st)
	}
	c.Step = int(r.byte())
	c.Stability = r.float()
	c.Difficulty = r.float()
	c.Due = r.varint()
	c.LastReview = r.varint()
	c.Reps = r.uvarint()
	c.Lapses = r.uvarint()
	c.LastID = binary.LittleEndian.Uint64(r.fixed(8))
	c.Recall = float64(math.Float32frombits(binary.LittleEndian.Uint32(r.fixed(4))))
	c.Topic = r.label()
	c.Stage = r.label()
	if r.err == nil && len(r.b) != 0 {
		r.err = errBadValue
	}
	if r.err != nil {
		return srs.Card{}, fmt.Errorf("card %s/%s/%s: %w", season, player, question, r.err)
	}
	return c, nil
}

// member is a question id as Redis stores it (hash field and due-set member):
// a canonical lower-case UUID as NUL + its 16 bytes, 17 bytes instead of 36 in
// both places; any other id as it is (ids never start with NUL: control
// characters are refused at the command layer).
func member(question string) string {
	if len(question) != 36 {
		return question
	}
	u, err := uuid.Parse(question)
	if err != nil || u.String() != question {
		return question // not canonical: keep the exact bytes the client sent
	}
	return "\x00" + string(u[:])
}

// questionOf is the inverse of member.
func questionOf(m string) string {
	if len(m) != 17 || m[0] != 0 {
		return m
	}
	var u uuid.UUID
	copy(u[:], m[1:])
	return u.String()
}
