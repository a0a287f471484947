package redis

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/google/uuid"

	"github.com/srsproxy/srsproxy/srs"
)

// Generation 3 stores a user-season as one hash, a header field "" and one
// field per card, and a labels string beside it (docs/CORE.md §1,
// "Generation 3").
//
// Header (field ""), format 3:
//
//	[0]      format version (3)
//	[1..8]   epoch: 8 bytes, new at every load; a record's label positions
//	         and relative times mean something only within its epoch
//	         base: zig-zag varint, unix ms; times are stored relative to it
//
// Labels (their own key): the distinct subjects, topics and stages of the
// student's cards, each u8 length + bytes, appended, never rewritten within
// an epoch; a record names them by position. They live outside the hash
// because a value over hash-max-listpack-value would turn the whole hash
// from a listpack into a hashtable (113 instead of ~64 bytes per card).
//
// Record (a card's field value):
//
//	labels     subject, topic, stage: uvarint positions in the labels
//	state/step u8: state << 6 | has last id << 5 | has recall << 4 | step;
//	           step 15 means a uvarint step follows
//	blank new card (state new, nothing else set): due − base, zig-zag; end
//	otherwise: stability, difficulty f64 (little endian),
//	           last review − base, due − last review (zig-zag varints),
//	           reps, lapses (uvarints), then if flagged the last review id
//	           hash u64 and the recall f32
//
// A reviewed card with labels takes about 43 bytes, a blank new one 6; the
// question id (hash field) takes 16 bytes when it is a canonical UUID.
const formatVersion = 3

// epochLen is the length of the header's epoch.
const epochLen = 8

// maxLabel is the longest subject, topic or stage the format can hold.
const maxLabel = math.MaxUint8

// The state/step byte: the state in the top two bits, then whether the
// last review id hash and the recall follow (cards never reviewed through
// this release, imported ones among them, have neither), then the step.
const (
	flagLastID = 1 << 5
	flagRecall = 1 << 4
	stepMask   = 0x0f
	longStep   = stepMask // a larger step follows as a uvarint
)

var errBadValue = errors.New("malformed cached card")

// labelSet is a card's subject, topic and stage.
type labelSet struct{ Subject, Topic, Stage string }

func labelsOf(c srs.Card) labelSet { return labelSet{c.Subject, c.Topic, c.Stage} }

func (l labelSet) each() [3]string { return [3]string{l.Subject, l.Topic, l.Stage} }

// header is a decoded header field and labels string.
type header struct {
	epoch  string // epochLen bytes
	base   int64
	labels []string
	index  map[string]int
	dict   string // the labels as stored, for the length check of an append
}

func newHeader(epoch string, base int64) *header {
	return &header{epoch: epoch, base: base, index: map[string]int{}}
}

// field is the header's hash field value.
func (h *header) field() string {
	b := append([]byte{formatVersion}, h.epoch...)
	return string(binary.AppendVarint(b, h.base))
}

// appendLabel encodes a label as the header stores it.
func appendLabel(b []byte, l string) ([]byte, error) {
	if len(l) > maxLabel {
		return nil, fmt.Errorf("label %q… longer than %d bytes", l[:16], maxLabel)
	}
	b = append(b, byte(len(l)))
	return append(b, l...), nil
}

// encodeLabels encodes labels as a header suffix.
func encodeLabels(labels []string) (string, error) {
	var b []byte
	for _, l := range labels {
		var err error
		if b, err = appendLabel(b, l); err != nil {
			return "", err
		}
	}
	return string(b), nil
}

// add appends labels to the header (in memory).
func (h *header) add(labels []string) error {
	suffix, err := encodeLabels(labels)
	if err != nil {
		return err
	}
	for _, l := range labels {
		h.index[l] = len(h.labels)
		h.labels = append(h.labels, l)
	}
	h.dict += suffix
	return nil
}

// positions returns the header positions of a card's labels; missing lists
// the labels the header lacks (each once), numbered after the header's own
// and those in pending, which it extends.
func (h *header) positions(l labelSet, pending map[string]int, missing *[]string) [3]int {
	var at [3]int
	for i, s := range l.each() {
		p, ok := h.index[s]
		if !ok {
			if p, ok = pending[s]; !ok {
				p = len(h.labels) + len(*missing)
				pending[s] = p
				*missing = append(*missing, s)
			}
		}
		at[i] = p
	}
	return at
}

// decodeHeader reads a header field and its labels. Any value that is not
// exactly one format-3 header, or labels that are not a list of labels, is
// an error wrapping errBadValue.
func decodeHeader(field, dict string) (*header, error) {
	r := reader{b: []byte(field)}
	if f := r.byte(); r.err != nil || f != formatVersion {
		return nil, fmt.Errorf("%w: header format %d", errBadValue, f)
	}
	h := &header{epoch: string(r.fixed(epochLen)), base: r.varint(), index: map[string]int{}, dict: dict}
	if r.err == nil && len(r.b) != 0 {
		r.err = errBadValue
	}
	r.b = []byte(dict)
	for r.err == nil && len(r.b) > 0 {
		l := r.label()
		if _, dup := h.index[l]; !dup {
			h.index[l] = len(h.labels)
		}
		h.labels = append(h.labels, l)
	}
	if r.err != nil {
		return nil, fmt.Errorf("header: %w", r.err)
	}
	return h, nil
}

// encodeRecord packs the schedule of c against h; labels are the header
// positions of its subject, topic and stage.
func encodeRecord(h *header, labels [3]int, c srs.Card) ([]byte, error) {
	if c.State < 0 || c.State > srs.StateRelearning || c.Step < 0 || c.Reps < 0 || c.Lapses < 0 {
		return nil, fmt.Errorf("card %s/%s: state, step, reps or lapses out of range", c.Player, c.QuestionID)
	}
	if !(finite(c.Stability) && finite(c.Difficulty) && finite(c.Recall)) {
		return nil, fmt.Errorf("card %s/%s: a non-finite stability, difficulty or recall", c.Player, c.QuestionID)
	}
	b := make([]byte, 0, 48)
	for _, l := range labels {
		b = binary.AppendUvarint(b, uint64(l))
	}
	recall := math.Float32bits(float32(c.Recall))
	ss := byte(c.State) << 6
	if c.LastID != 0 {
		ss |= flagLastID
	}
	if recall != 0 {
		ss |= flagRecall
	}
	if c.Step < longStep {
		b = append(b, ss|byte(c.Step))
	} else {
		b = append(b, ss|longStep)
		b = binary.AppendUvarint(b, uint64(c.Step))
	}
	if isBlank(c.Schedule) {
		return binary.AppendVarint(b, c.Due-h.base), nil
	}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.Stability))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.Difficulty))
	b = binary.AppendVarint(b, c.LastReview-h.base)
	b = binary.AppendVarint(b, c.Due-c.LastReview)
	b = binary.AppendUvarint(b, uint64(c.Reps))
	b = binary.AppendUvarint(b, uint64(c.Lapses))
	if c.LastID != 0 {
		b = binary.LittleEndian.AppendUint64(b, c.LastID)
	}
	if recall != 0 {
		b = binary.LittleEndian.AppendUint32(b, recall)
	}
	return b, nil
}

// isBlank is a new card nothing happened to: only its due time is stored.
func isBlank(s srs.Schedule) bool {
	return s.State == srs.StateNew && s.Stability == 0 && s.Difficulty == 0 && s.LastReview == 0 &&
		s.Reps == 0 && s.Lapses == 0 && s.LastID == 0 && s.Recall == 0 &&
		!math.Signbit(s.Stability) && !math.Signbit(s.Difficulty)
}

// recordSubject reads only the subject's position of a record (due lists
// filter by subject without decoding the rest).
func recordSubject(v string) (int, bool) {
	n, k := uvarintString(v)
	return int(n), k > 0 && n <= math.MaxInt32
}

func uvarintString(v string) (uint64, int) {
	var x uint64
	var s uint
	for i := 0; i < len(v) && i < binary.MaxVarintLen64; i++ {
		b := v[i]
		if b < 0x80 {
			return x | uint64(b)<<s, i + 1
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return 0, 0
}

// decodeRecord unpacks a record of h; season, player and question come from
// the key and field. Any value that is not exactly one format-3 record whose
// labels h holds is an error wrapping errBadValue.
func decodeRecord(h *header, season, player, question string, v []byte) (srs.Card, error) {
	r := reader{b: v}
	c := srs.Card{Season: season, Player: player, QuestionID: question}
	var labels [3]string
	for i := range labels {
		li := r.uvarint()
		if r.err == nil && li >= len(h.labels) {
			r.err = fmt.Errorf("%w: label %d of %d", errBadValue, li, len(h.labels))
		}
		if r.err == nil {
			labels[i] = h.labels[li]
		}
	}
	c.Subject, c.Topic, c.Stage = labels[0], labels[1], labels[2]
	ss := r.byte()
	c.State, c.Step = srs.State(ss>>6), int(ss&stepMask)
	if c.Step == longStep {
		if c.Step = r.uvarint(); r.err == nil && c.Step < longStep {
			r.err = errBadValue // not the canonical encoding
		}
	}
	if r.err == nil && c.State == srs.StateNew && len(r.b) < 16 {
		c.Due = h.base + r.varint()
		if ss&(flagLastID|flagRecall) != 0 {
			r.err = errBadValue // a blank card has neither
		}
	} else {
		c.Stability = r.float()
		c.Difficulty = r.float()
		c.LastReview = h.base + r.varint()
		c.Due = c.LastReview + r.varint()
		c.Reps = r.uvarint()
		c.Lapses = r.uvarint()
		if ss&flagLastID != 0 {
			if c.LastID = binary.LittleEndian.Uint64(r.fixed(8)); c.LastID == 0 {
				r.err = errBadValue // not the canonical encoding
			}
		}
		if ss&flagRecall != 0 {
			bits := binary.LittleEndian.Uint32(r.fixed(4))
			if c.Recall = float64(math.Float32frombits(bits)); bits == 0 {
				r.err = errBadValue
			}
		}
		if r.err == nil && isBlank(c.Schedule) {
			r.err = errBadValue // a blank card has the short form
		}
		if r.err == nil && !(finite(c.Stability) && finite(c.Difficulty) && finite(c.Recall)) {
			r.err = fmt.Errorf("%w: a non-finite number", errBadValue)
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errBadValue
	}
	if r.err != nil {
		return srs.Card{}, fmt.Errorf("card %s/%s/%s: %w", season, player, question, r.err)
	}
	return c, nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

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

// member is a question id as the card hash stores it: a canonical lower-case
// UUID as its 16 bytes; any other id as it is, except that an id of exactly
// 16 bytes is prefixed with \x01 so it never reads as a UUID (ids never
// start with a control character: the command layer refuses them). The
// header's field "" is no id either.
func member(question string) string {
	switch len(question) {
	case 16:
		return "\x01" + question
	case 36:
		u, err := uuid.Parse(question)
		if err == nil && u.String() == question {
			return string(u[:])
		}
	}
	return question // not canonical: keep the exact bytes the client sent
}

// questionOf is the inverse of member.
func questionOf(m string) string {
	switch {
	case len(m) == 16:
		var u uuid.UUID
		copy(u[:], m)
		return u.String()
	case len(m) == 17 && m[0] == 1:
		return m[1:]
	}
	return m
}
