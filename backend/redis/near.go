package redis

import (
	"cmp"
	"container/list"
	"hash/maphash"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/srsproxy/srsproxy/srs"
)

// The near-cache keeps recently used user-seasons in the sidecar's memory,
// each a snapshot of one version of the user's card hash in Redis. A due
// list or a card read checks the version with one GET (Redis's cheapest
// command) and is then answered from memory; only a changed or unknown user
// is fetched whole. Reviews build on a snapshot without checking it: their
// compare-and-set in Redis catches a stale one (docs/CORE.md §1).

// nearShards splits the near-cache so connections do not queue on one lock.
const nearShards = 16

// slotBytes is the memory of one card beyond its member and record bytes
// (the slot and its two index entries), for the size budget.
const slotBytes = 48 + 8

type nearCache struct {
	seed   maphash.Seed
	shards [nearShards]nearShard
}

type nearShard struct {
	mu    sync.Mutex
	max   int64
	used  int64
	lru   *list.List // of *userEntry, most recent first
	users map[string]*list.Element
}

func newNearCache(maxBytes int64) *nearCache {
	n := &nearCache{seed: maphash.MakeSeed()}
	for i := range n.shards {
		n.shards[i] = nearShard{max: maxBytes / nearShards, lru: list.New(), users: map[string]*list.Element{}}
	}
	return n
}

func (n *nearCache) shard(key string) *nearShard {
	return &n.shards[maphash.String(n.seed, key)%nearShards]
}

// get returns the user's snapshot (nil: none) and marks it recently used.
func (n *nearCache) get(key string) *userEntry {
	s := n.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.users[key]
	if !ok {
		return nil
	}
	s.lru.MoveToFront(el)
	return el.Value.(*userEntry)
}

// put stores a snapshot in place of any older one, evicting the least
// recently used users beyond the shard's budget. A user larger than the
// whole budget is not kept.
func (n *nearCache) put(e *userEntry) {
	s := n.shard(e.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.users[e.key]; ok {
		if o := old.Value.(*userEntry); o.newerThan(e) {
			return // a slower fetch: keep the snapshot that is ahead
		}
		s.used -= old.Value.(*userEntry).size
		s.lru.Remove(old)
		delete(s.users, e.key)
	}
	if e.size > s.max {
		return
	}
	s.users[e.key] = s.lru.PushFront(e)
	s.used += e.size
	for s.used > s.max {
		last := s.lru.Back()
		victim := last.Value.(*userEntry)
		s.lru.Remove(last)
		delete(s.users, victim.key)
		s.used -= victim.size
	}
}

// drop forgets a user.
func (n *nearCache) drop(key string) {
	s := n.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.users[key]; ok {
		s.used -= el.Value.(*userEntry).size
		s.lru.Remove(el)
		delete(s.users, key)
	}
}

// dropSeason forgets every user of a season.
func (n *nearCache) dropSeason(season string) {
	for i := range n.shards {
		s := &n.shards[i]
		s.mu.Lock()
		for key, el := range s.users {
			if e := el.Value.(*userEntry); e.season == season {
				s.used -= e.size
				s.lru.Remove(el)
				delete(s.users, key)
			}
		}
		s.mu.Unlock()
	}
}

// stats returns the users and bytes held.
func (n *nearCache) stats() (users int, bytes int64) {
	for i := range n.shards {
		s := &n.shards[i]
		s.mu.Lock()
		users += len(s.users)
		bytes += s.used
		s.mu.Unlock()
	}
	return users, bytes
}

// userEntry is one user-season as of one version in Redis.
type userEntry struct {
	key, season, player string
	size                int64 // bytes charged to the budget, fixed at creation

	mu       sync.Mutex
	version  int64 // 0: no longer trusted (a local write raced another)
	slidAt   int64 // unix ms of the last TTL slide
	hdr      *header
	slots    []slot
	byMember []int32 // slot indexes ordered by member
	byDue    []int32 // slot indexes ordered by (due, member)
	// pending are this sidecar's stored writes that overtook an earlier
	// one, by version, waiting to be applied in order.
	pending map[int64]putBatch
}

// slot is one card: its hash field and record as stored, and what due lists
// sort and filter by.
type slot struct {
	member, record string
	due            int64
	subject        int32 // the subject's position in the header
	maxLabel       int32 // the highest label position the record names
}

// newEntry builds a snapshot from a user's fields (header included) and labels.
func newEntry(key, season, player string, version, now int64, fields map[string]string, labels string) (*userEntry, error) {
	hdr, err := decodeHeader(fields[""], labels)
	if err != nil {
		return nil, err
	}
	e := &userEntry{key: key, season: season, player: player, version: version, slidAt: now, hdr: hdr,
		slots: make([]slot, 0, len(fields))}
	size := int64(len(hdr.dict)) + 256
	for m, rec := range fields {
		if m == "" {
			continue
		}
		s, err := e.makeSlot(m, rec)
		if err != nil {
			return nil, err
		}
		e.slots = append(e.slots, s)
		size += int64(len(m)+len(rec)) + slotBytes
	}
	e.size = size
	e.index()
	return e, nil
}

// newerThan reports whether e shows a later version of the same epoch than o.
func (e *userEntry) newerThan(o *userEntry) bool {
	e.mu.Lock()
	epoch, version := e.hdr.epoch, e.version
	e.mu.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	return epoch == o.hdr.epoch && version > o.version
}

// makeSlot validates a stored record against the header.
func (e *userEntry) makeSlot(m, rec string) (slot, error) {
	c, err := decodeRecord(e.hdr, e.season, e.player, questionOf(m), []byte(rec))
	if err != nil {
		return slot{}, err
	}
	return slotOf(e.hdr, m, rec, c), nil
}

// slotOf is the slot of a card's record.
func slotOf(h *header, m, rec string, c srs.Card) slot {
	sub, _ := recordSubject(rec)
	return slot{member: m, record: rec, due: c.Due, subject: int32(sub),
		maxLabel: int32(max(h.index[c.Subject], h.index[c.Topic], h.index[c.Stage]))}
}

func (e *userEntry) index() {
	n := len(e.slots)
	e.byMember = make([]int32, n)
	e.byDue = make([]int32, n)
	for i := range n {
		e.byMember[i], e.byDue[i] = int32(i), int32(i)
	}
	slices.SortFunc(e.byMember, func(a, b int32) int { return cmp.Compare(e.slots[a].member, e.slots[b].member) })
	slices.SortFunc(e.byDue, e.dueOrder)
}

func (e *userEntry) dueOrder(a, b int32) int {
	if c := cmp.Compare(e.slots[a].due, e.slots[b].due); c != 0 {
		return c
	}
	return cmp.Compare(e.slots[a].member, e.slots[b].member)
}

// find returns the slot of a member, or -1. The caller holds e.mu.
func (e *userEntry) find(m string) int32 {
	i := sort.Search(len(e.byMember), func(i int) bool { return e.slots[e.byMember[i]].member >= m })
	if i < len(e.byMember) && e.slots[e.byMember[i]].member == m {
		return e.byMember[i]
	}
	return -1
}

// card returns the cached card of a question and its token. The caller holds e.mu.
func (e *userEntry) card(question string) (srs.CachedCard, bool, error) {
	i := e.find(member(question))
	if i < 0 {
		return srs.CachedCard{}, false, nil
	}
	c, err := decodeRecord(e.hdr, e.season, e.player, question, []byte(e.slots[i].record))
	if err != nil {
		return srs.CachedCard{}, false, err
	}
	return srs.CachedCard{Card: c, Token: e.token(e.slots[i].record)}, true, nil
}

// token is a record's compare-and-set token: the epoch and the record, so a
// token never matches a record of another epoch (whose label indexes and
// times mean something else).
func (e *userEntry) token(record string) string { return e.hdr.epoch + record }

// set stores a record in the snapshot, keeping both orders. The caller
// holds e.mu and has checked the record against e.hdr.
func (e *userEntry) set(s slot) {
	i := e.find(s.member)
	if i < 0 {
		i = int32(len(e.slots))
		e.slots = append(e.slots, s)
		at := sort.Search(len(e.byMember), func(k int) bool { return e.slots[e.byMember[k]].member >= s.member })
		e.byMember = slices.Insert(e.byMember, at, i)
		e.byDue = append(e.byDue, i)
	} else {
		e.slots[i] = s
	}
	// Re-place slot i in the due order: remove it, insert it at its place.
	e.byDue = slices.DeleteFunc(e.byDue, func(k int32) bool { return k == i })
	at := sort.Search(len(e.byDue), func(k int) bool { return e.dueOrder(e.byDue[k], i) > 0 })
	e.byDue = slices.Insert(e.byDue, at, i)
}

// due returns a page of due cards. The caller holds e.mu.
func (e *userEntry) due(subject string, now int64, limit int) (srs.DuePage, error) {
	n := sort.Search(len(e.byDue), func(k int) bool { return e.slots[e.byDue[k]].due > now })
	page := srs.DuePage{Loaded: true, Cards: make([]srs.Card, 0, min(limit, n))}
	if n < len(e.byDue) {
		page.NextDue = e.slots[e.byDue[n]].due
	}
	due := e.byDue[:n]
	if subject == "" {
		page.Total = int64(n)
		due = due[:min(limit, n)] // no filter: only the page is decoded
	}
	for _, i := range due {
		s := &e.slots[i]
		if subject != "" {
			if e.hdr.labels[s.subject] != subject {
				continue
			}
			page.Total++
		}
		if len(page.Cards) < limit {
			c, err := decodeRecord(e.hdr, e.season, e.player, questionOf(s.member), []byte(s.record))
			if err != nil {
				return srs.DuePage{}, err
			}
			page.Cards = append(page.Cards, c)
		}
	}
	return page, nil
}

// all returns every card with its token. The caller holds e.mu.
func (e *userEntry) all() (map[string]srs.CachedCard, error) {
	out := make(map[string]srs.CachedCard, len(e.slots))
	for _, s := range e.slots {
		q := questionOf(s.member)
		c, err := decodeRecord(e.hdr, e.season, e.player, q, []byte(s.record))
		if err != nil {
			return nil, err
		}
		out[q] = srs.CachedCard{Card: c, Token: e.token(s.record)}
	}
	return out, nil
}

// putBatch is a set of compare-and-sets encoded against one snapshot.
type putBatch struct {
	args    []any
	sent    int
	slots   []slot   // the records sent, to apply to the snapshot once stored
	labels  []string // labels the header gains
	dictLen int      // the labels' length the records were encoded against
	epoch   string   // and its epoch
}

// batch encodes puts for the swap script. A put whose token is of another
// epoch is left out: it cannot match.
func (e *userEntry) batch(puts []srs.CardPut, ttl int64) (putBatch, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b := putBatch{dictLen: len(e.hdr.dict), epoch: e.hdr.epoch}
	pending := map[string]int{}
	body := make([]any, 0, 3*len(puts))
	for _, p := range puts {
		expected := ""
		if p.Expected != "" {
			rec, ok := strings.CutPrefix(p.Expected, e.hdr.epoch)
			if !ok || rec == "" {
				continue
			}
			expected = rec
		}
		at := e.hdr.positions(labelsOf(p.Card), pending, &b.labels)
		rec, err := encodeRecord(e.hdr, at, p.Card)
		if err != nil {
			return putBatch{}, err
		}
		m := member(p.Card.QuestionID)
		body = append(body, m, expected, string(rec))
		b.slots = append(b.slots, slot{member: m, record: string(rec), due: p.Card.Due, subject: int32(at[0]),
			maxLabel: int32(max(at[0], at[1], at[2]))})
		b.sent++
	}
	suffix, err := encodeLabels(b.labels)
	if err != nil {
		return putBatch{}, err
	}
	b.args = append([]any{ttl, e.hdr.epoch, b.dictLen, suffix}, body...)
	return b, nil
}

// settle applies a stored batch (Redis answered version) to the snapshot.
// Writes are applied in version order: one that overtook an earlier write
// of this sidecar waits for it (pending); one the snapshot cannot follow
// (a partly written batch, another epoch, a header that moved) leaves it
// distrusted, and the next read fetches the user again. A version another
// sidecar wrote never arrives here: the snapshot stays at the last version
// it can show, which the next read's GET sees is behind.
func (e *userEntry) settle(b putBatch, written int, version int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case written == 0 && len(b.labels) == 0, e.version == 0, version <= e.version:
		return // nothing written, already distrusted, or already shown
	case b.epoch != e.hdr.epoch || written != b.sent:
		e.version = 0
		return
	case version > e.version+1:
		if len(e.pending) >= maxPending {
			e.version = 0
			return
		}
		if e.pending == nil {
			e.pending = map[int64]putBatch{}
		}
		e.pending[version] = b
		return
	}
	e.apply(b, version)
	for e.version != 0 {
		next, ok := e.pending[e.version+1]
		if !ok {
			break
		}
		delete(e.pending, e.version+1)
		e.apply(next, e.version+1)
	}
}

// maxPending bounds the writes a snapshot holds back waiting for an earlier one.
const maxPending = 64

// apply shows one stored batch as version. The caller holds e.mu.
func (e *userEntry) apply(b putBatch, version int64) {
	if len(b.labels) > 0 {
		if len(e.hdr.dict) != b.dictLen {
			e.version = 0
			return
		}
		if err := e.hdr.add(b.labels); err != nil {
			e.version = 0
			return
		}
	}
	for _, s := range b.slots {
		if int(s.maxLabel) >= len(e.hdr.labels) {
			e.version = 0
			return
		}
	}
	for _, s := range b.slots {
		e.set(s)
	}
	e.version = version
}

// distrust marks the snapshot as possibly behind Redis.
func (e *userEntry) distrust() {
	e.mu.Lock()
	e.version = 0
	e.mu.Unlock()
}
