package writebehind

import (
	"bytes"
	"hash/maphash"
	"slices"

	"github.com/srsproxy/srsproxy/srs"
)

// entry is one undrained review. It keeps the review encoded (package wire's
// bytes, about 170 B for a typical review) rather than as an srs.Review
// (about 560 B of heap with its strings); it is decoded on demand.
type entry struct {
	seq    uint64
	at     int64  // append time, unix ns (ms precision for recovered entries)
	review []byte // wire encoding; v1 if legacy. Never modified.
	next   *entry // next older entry in the same byCard chain
	size   int32  // frame bytes in the log
	held   bool   // written, but not to be drained until Release
	legacy bool   // written by release 1 (wire v1)
}

// entryOverhead estimates the heap an entry costs beside its review bytes:
// the struct (64 B size class), its slots in the append-order slice, the
// per-user slice and the per-card map.
const entryOverhead = 64 + 16 + 16 + 32

func (e *entry) memCost() int64 { return int64(cap(e.review)) + entryOverhead }

func (e *entry) decode() (srs.Review, error) { return decodeWire(e.review, e.legacy) }

// cardKey is the wire encoding of (id, season, player, question): the span
// that makes a review id unique.
func (e *entry) cardKey() []byte {
	ends, _ := wireKeys(e.review) // checked when the entry was made
	return e.review[:ends[3]]
}

// userKey is the wire encoding of (season, player).
func (e *entry) userKey() []byte {
	ends, _ := wireKeys(e.review)
	return e.review[ends[0]:ends[2]]
}

// season returns the season's bytes.
func (e *entry) season() []byte {
	ends, _ := wireKeys(e.review)
	b := e.review[ends[0]:ends[1]]
	_, k := uvarintLen(b)
	return b[k:]
}

func uvarintLen(b []byte) (uint64, int) {
	var v uint64
	for i, c := range b {
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

// index is the in-memory view of the undrained entries. Its maps are keyed
// by a hash of an entry's key bytes; every lookup compares the bytes, so a
// hash collision costs a comparison, never a wrong answer.
type index struct {
	seed    maphash.Seed
	entries []*entry            // append order
	byUser  map[uint64][]*entry // hash of userKey → entries in append order
	byCard  map[uint64]*entry   // hash of cardKey → newest entry, chained by next
	seasons map[string]int
	bytes   int64 // frame bytes of the entries
	mem     int64 // estimated heap of the entries
}

func newIndex() index {
	return index{seed: maphash.MakeSeed(), byUser: map[uint64][]*entry{}, byCard: map[uint64]*entry{}, seasons: map[string]int{}}
}

func (x *index) add(e *entry) {
	x.entries = append(x.entries, e)
	uh := maphash.Bytes(x.seed, e.userKey())
	x.byUser[uh] = append(x.byUser[uh], e)
	ch := maphash.Bytes(x.seed, e.cardKey())
	e.next = x.byCard[ch]
	x.byCard[ch] = e
	s := e.season()
	if n, ok := x.seasons[string(s)]; ok {
		x.seasons[string(s)] = n + 1
	} else {
		x.seasons[string(s)] = 1
	}
	x.bytes += int64(e.size)
	x.mem += e.memCost()
}

// removeFirst removes the oldest entry, e.
func (x *index) removeFirst(e *entry) {
	x.entries[0] = nil
	x.entries = x.entries[1:]
	x.unlink(e)
}

// remove takes e out wherever it is (held entries are near the tail).
func (x *index) remove(e *entry) {
	for i := len(x.entries) - 1; i >= 0; i-- {
		if x.entries[i] == e {
			x.entries = slices.Delete(x.entries, i, i+1)
			break
		}
	}
	x.unlink(e)
}

func (x *index) unlink(e *entry) {
	uh := maphash.Bytes(x.seed, e.userKey())
	es := x.byUser[uh]
	if i := slices.Index(es, e); i >= 0 {
		es = slices.Delete(es, i, i+1)
	}
	if len(es) > 0 {
		x.byUser[uh] = es
	} else {
		delete(x.byUser, uh)
	}
	ch := maphash.Bytes(x.seed, e.cardKey())
	for p := x.byCard[ch]; p != nil; p = p.next {
		if p == e {
			x.byCard[ch] = e.next
			break
		}
		if p.next == e {
			p.next = e.next
			break
		}
	}
	if x.byCard[ch] == nil {
		delete(x.byCard, ch)
	}
	e.next = nil
	s := e.season()
	if n := x.seasons[string(s)]; n > 1 {
		x.seasons[string(s)] = n - 1
	} else {
		delete(x.seasons, string(s))
	}
	x.bytes -= int64(e.size)
	x.mem -= e.memCost()
}

// user returns the entries of one user-season in append order.
func (x *index) user(season, player string) []*entry {
	key := appendKey(make([]byte, 0, 64), season, player)
	es := x.byUser[maphash.Bytes(x.seed, key)]
	var out []*entry
	for _, e := range es {
		if bytes.Equal(e.userKey(), key) {
			out = append(out, e)
		}
	}
	return out
}

// card returns the newest not-held entry of a review id on one card.
func (x *index) card(season, player, question, id string) *entry {
	key := appendKey(make([]byte, 0, 96), id, season, player, question)
	for e := x.byCard[maphash.Bytes(x.seed, key)]; e != nil; e = e.next {
		if !e.held && bytes.Equal(e.cardKey(), key) {
			return e
		}
	}
	return nil
}

// users lists the user-seasons, each once.
func (x *index) users() [][2]string {
	seen := map[string]bool{}
	var out [][2]string
	for _, es := range x.byUser {
		for _, e := range es {
			k := e.userKey()
			if seen[string(k)] {
				continue
			}
			seen[string(k)] = true
			ends, _ := wireKeys(e.review)
			season, player := e.review[ends[0]:ends[1]], e.review[ends[1]:ends[2]]
			_, k1 := uvarintLen(season)
			_, k2 := uvarintLen(player)
			out = append(out, [2]string{string(season[k1:]), string(player[k2:])})
		}
	}
	return out
}
