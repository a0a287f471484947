package writebehind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/srsproxy/srsproxy/srs"
)

// Payload encoding, version 1: the version byte, the append time (unix ms),
// then every srs.Review field in declaration order. Strings are a uvarint
// length and the bytes, integers zig-zag varints, floats 8 bytes of IEEE 754
// little-endian. The explicit order (not reflection) keeps old queue files
// readable when srs.Review gains or renames fields: bump the version then.
const payloadVersion = 1

// payloadCancel starts a cancel record: the byte, then the uvarint sequence
// number of an earlier entry that must not be drained (its review lost a
// compare-and-set and was never acknowledged).
const payloadCancel = 0xCA

func encodeCancel(seq uint64) []byte {
	return binary.AppendUvarint([]byte{payloadCancel}, seq)
}

// decodeCancel returns the cancelled sequence number of a cancel record.
func decodeCancel(p []byte) (uint64, bool) {
	if len(p) < 2 || p[0] != payloadCancel {
		return 0, false
	}
	seq, n := binary.Uvarint(p[1:])
	return seq, n > 0 && n == len(p)-1
}

var errTruncatedPayload = errors.New("truncated payload")

func encodeEntry(dst []byte, appendedAt int64, r srs.Review) []byte {
	dst = append(dst, payloadVersion)
	dst = binary.AppendVarint(dst, appendedAt)
	for _, s := range [...]string{r.ID, r.Season, r.Player, r.QuestionID, r.Subject, r.Topic, r.Stage} {
		dst = appendString(dst, s)
	}
	for _, v := range [...]int64{int64(r.Grade), r.ReviewedAt, r.DurationMS, int64(r.ElapsedDays)} {
		dst = binary.AppendVarint(dst, v)
	}
	dst = appendSchedule(dst, r.Before)
	dst = appendSchedule(dst, r.After)
	return appendString(dst, r.Sidecar)
}

func appendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

func appendSchedule(dst []byte, s srs.Schedule) []byte {
	dst = binary.AppendVarint(dst, int64(s.State))
	dst = binary.AppendVarint(dst, int64(s.Step))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.Stability))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.Difficulty))
	for _, v := range [...]int64{s.Due, s.LastReview, int64(s.Reps), int64(s.Lapses)} {
		dst = binary.AppendVarint(dst, v)
	}
	return dst
}

func decodeEntry(p []byte) (appendedAt int64, r srs.Review, err error) {
	if len(p) == 0 {
		return 0, r, errTruncatedPayload
	}
	if p[0] != payloadVersion {
		return 0, r, fmt.Errorf("unknown payload version %d", p[0])
	}
	d := decoder{b: p[1:]}
	appendedAt = d.varint()
	for _, s := range [...]*string{&r.ID, &r.Season, &r.Player, &r.QuestionID, &r.Subject, &r.Topic, &r.Stage} {
		*s = d.string()
	}
	r.Grade = srs.Grade(d.varint())
	r.ReviewedAt = d.varint()
	r.DurationMS = d.varint()
	r.ElapsedDays = int(d.varint())
	r.Before = d.schedule()
	r.After = d.schedule()
	r.Sidecar = d.string()
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return appendedAt, r, d.err
}

// decoder reads payload fields and keeps the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.fail()
		return ""
	}
	s := string(d.b[k : k+int(n)])
	d.b = d.b[k+int(n):]
	return s
}

func (d *decoder) float() float64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *decoder) schedule() srs.Schedule {
	var s srs.Schedule
	s.State = srs.State(d.varint())
	s.Step = int(d.varint())
	s.Stability = d.float()
	s.Difficulty = d.float()
	s.Due = d.varint()
	s.LastReview = d.varint()
	s.Reps = int(d.varint())
	s.Lapses = int(d.varint())
	return s
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errTruncatedPayload
	}
	d.b = nil
}
