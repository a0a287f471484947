package main

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/srsproxy/srsproxy/srs"
)

// A dataset is one season of Users × CardsPerUser cards. Every card is a pure
// function of (season, user, index), so the seeder, the Redis loader and the
// load generators agree on the data without holding it in memory.
type dataset struct {
	Season       string
	Users        int
	CardsPerUser int
	Cached       int   // users 0..Cached-1 are loaded into Redis
	Now          int64 // reference time of the due spread, unix ms
	seed         uint64

	namesOnce sync.Once
	names     []string
}

// overdueShare is the fraction of cards due before Now: with 500 cards a user
// has about 60 due, so SRS.DUE LIMIT 20 returns a full page.
const overdueShare = 0.12

const (
	minute = int64(60_000)
	day    = 24 * 60 * minute
)

var (
	subjects = []string{"math", "physics", "chemistry", "biology", "history", "geography", "english", "french"}
	stages   = []string{"intro", "core", "practice", "exam"}
	topics   = func() []string {
		t := make([]string, 24)
		for i := range t {
			t[i] = "topic-" + strconv.Itoa(i+1)
		}
		return t
	}()
)

func newDataset(season string, users, perUser, cached int, now int64) *dataset {
	h := fnv.New64a()
	h.Write([]byte(season))
	return &dataset{Season: season, Users: users, CardsPerUser: perUser, Cached: min(cached, users), Now: now, seed: h.Sum64()}
}

// Cards is the dataset's total card count.
func (d *dataset) Cards() int64 { return int64(d.Users) * int64(d.CardsPerUser) }

func (d *dataset) player(u int) string { return fmt.Sprintf("student-%07d", u) }

// mix is splitmix64's finaliser.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// stream is a tiny deterministic generator (splitmix64).
type stream struct{ s uint64 }

func (r *stream) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix(r.s)
}

func (r *stream) float() float64 { return float64(r.next()>>11) / (1 << 53) }

func (r *stream) intn(n int) int { return int(r.next() % uint64(n)) }

// uuidOf formats 128 random bits as a version 4 UUID.
func uuidOf(hi, lo uint64) string {
	var b uuid.UUID
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b.String()
}

func (d *dataset) cardStream(u, j int) stream {
	return stream{s: mix(d.seed ^ mix(uint64(u)<<24^uint64(j)))}
}

// question is the question id of card j of user u.
func (d *dataset) question(u, j int) string {
	r := d.cardStream(u, j)
	return uuidOf(r.next(), r.next())
}

// card is card j of user u: a UUID question, a subject, topic and stage, and
// an FSRS state whose due date is overdue for overdueShare of the cards and
// otherwise spread over the next six months, denser in the near future.
func (d *dataset) card(u, j int) srs.Card {
	r := d.cardStream(u, j)
	c := srs.Card{Season: d.Season, Player: d.player(u), QuestionID: uuidOf(r.next(), r.next())}
	c.Subject = subjects[r.intn(len(subjects))]
	c.Topic = topics[r.intn(len(topics))]
	c.Stage = stages[r.intn(len(stages))]
	if f := r.float(); f < overdueShare {
		c.Due = d.Now - 1 - int64(f/overdueShare*30*float64(day))
	} else {
		g := r.float()
		c.Due = d.Now + minute + int64(g*g*180*float64(day))
	}
	c.Difficulty = 1 + 9*r.float()
	switch p := r.float(); {
	case p < 0.82:
		c.State = srs.StateReview
		c.Stability = 0.5 + 120*r.float()
		c.Reps = 2 + r.intn(30)
		c.Lapses = r.intn(4)
	case p < 0.92:
		c.State = srs.StateLearning
		c.Step = r.intn(2)
		c.Stability = 0.1 + 3*r.float()
		c.Reps = 1 + r.intn(2)
	default:
		c.State = srs.StateRelearning
		c.Stability = 0.1 + 5*r.float()
		c.Reps = 4 + r.intn(30)
		c.Lapses = 1 + r.intn(5)
	}
	interval := max(int64(c.Stability*float64(day)), 10*minute)
	c.LastReview = min(c.Due-interval, d.Now-minute-int64(r.intn(int(day))))
	return c
}

// userCards returns every card of user u in primary-key (question id) order.
func (d *dataset) userCards(u int) []srs.Card {
	cards := make([]srs.Card, d.CardsPerUser)
	for j := range cards {
		cards[j] = d.card(u, j)
	}
	slices.SortFunc(cards, func(a, b srs.Card) int { return strings.Compare(a.QuestionID, b.QuestionID) })
	return cards
}

// appendTSV appends a card as one LOAD DATA line, in the column order of
// loadColumns. Doubles are written in their shortest exact form, so MariaDB
// stores the very values the Redis loader encodes.
func appendTSV(b []byte, c srs.Card) []byte {
	b = append(b, c.Season...)
	b = append(b, '\t')
	b = append(b, c.Player...)
	b = append(b, '\t')
	b = append(b, c.QuestionID...)
	b = append(b, '\t')
	b = append(b, c.Subject...)
	b = append(b, '\t')
	b = append(b, c.Topic...)
	b = append(b, '\t')
	b = append(b, c.Stage...)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(c.State), 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(c.Step), 10)
	b = append(b, '\t')
	b = strconv.AppendFloat(b, c.Stability, 'g', -1, 64)
	b = append(b, '\t')
	b = strconv.AppendFloat(b, c.Difficulty, 'g', -1, 64)
	b = append(b, '\t')
	b = strconv.AppendInt(b, c.Due, 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, c.LastReview, 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(c.Reps), 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(c.Lapses), 10)
	return append(b, '\n')
}

const loadColumns = "(season, player, question_id, subject, topic, stage, state, step, stability, difficulty, due, last_review, reps, lapses)"
