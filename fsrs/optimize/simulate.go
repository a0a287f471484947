package optimize

import (
	"math"
	"math/rand/v2"
)

// Group is a group of simulated students who share memory parameters.
type Group struct {
	Params   Params // how their memory works
	Students int
}

// SimConfig describes a simulated season.
type SimConfig struct {
	Seed            uint64
	Groups          []Group
	CardsPerStudent int     // new cards each student learns
	Days            int     // season length; cards start in its first half
	ParamNoise      float64 // per-student jitter: each weight × e^(ParamNoise·N(0,1)), clamped
	Retention       float64 // the app's desired retention: 0.9
	// AppParams are what the app schedules with (the memory it believes
	// in); the zero value means the FSRS-6 defaults.
	AppParams Params
}

// SimCard is one simulated card's log.
type SimCard struct {
	Group, Student int
	Reviews        Card
}

const dayMS = 86_400_000

// Simulate generates review logs of students whose memory follows FSRS-6
// with their group's parameters (jittered per student), scheduled by an app
// using AppParams: a review is passed with probability R(t, S) of the
// student's true memory; grades after a pass are Hard/Good/Easy with
// per-student odds; intervals are the app's, with lateness noise (most
// reviews a little early or late, some very late); a first Again or Hard and
// every lapse get a same-day repeat ten minutes later. The same config
// always gives the same logs. Days count UTC calendar dates.
func Simulate(cfg SimConfig) []SimCard {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x51))
	app := cfg.AppParams
	if app == (Params{}) {
		app = defaultParams
	}
	ap := newParams(&app)
	retention := cfg.Retention
	if retention == 0 {
		retention = 0.9
	}
	var out []SimCard
	student := 0
	for gi, g := range cfg.Groups {
		for range g.Students {
			w := g.Params
			for i := range w {
				w[i] = clamp(w[i]*math.Exp(cfg.ParamNoise*rng.NormFloat64()), clipRanges[i][0], clipRanges[i][1])
			}
			tp := newParams(&w)
			// Per-student grading habits.
			hard := 0.05 + 0.15*rng.Float64()
			easy := 0.02 + 0.15*rng.Float64()
			first := [4]float64{0.1 + 0.2*rng.Float64(), 0.05 + 0.1*rng.Float64(), 0, 0.05 + 0.2*rng.Float64()}
			first[2] = 1 - first[0] - first[1] - first[3]
			for range cfg.CardsPerStudent {
				out = append(out, SimCard{Group: gi, Student: student,
					Reviews: simulateCard(rng, &tp, &ap, retention, cfg.Days, hard, easy, first)})
			}
			student++
		}
	}
	return out
}

func simulateCard(rng *rand.Rand, tp, ap *params, retention float64, days int, hard, easy float64, first [4]float64) Card {
	var st step
	day := rng.IntN(max(days/2, 1))
	at := int64(day)*dayMS + int64(6*3600_000+rng.IntN(14*3600_000))
	u := rng.Float64()
	g := 4
	for k, p := range first {
		if u < p {
			g = k + 1
			break
		}
		u -= p
	}
	card := Card{{Grade: g, Days: 0, At: at}}
	ts, td := tp.initState(g)
	as, ad := ap.initState(g)
	lastDay, lastAt := day, at
	repeat := g <= 2
	for len(card) < 200 {
		var nextAt int64
		if repeat {
			nextAt = lastAt + 10*60_000
		} else {
			ivl := as / ap.factor * (math.Pow(retention, 1/ap.decay) - 1)
			d := max(1, int(math.Round(ivl)))
			switch u := rng.Float64(); {
			case u < 0.05:
				d = max(1, int(math.Round(float64(d)*(2+3*rng.Float64())))) // very late
			default:
				d = max(1, int(math.Round(float64(d)*math.Exp(0.25*rng.NormFloat64()))))
			}
			nextAt = int64(lastDay+d)*dayMS + int64(6*3600_000+rng.IntN(14*3600_000))
		}
		nd := int(nextAt / dayMS)
		if nd >= days {
			break
		}
		elapsed := nd - lastDay
		// Recall follows the true memory at the real time elapsed.
		r := tp.recall(float64(nextAt-lastAt)/dayMS, ts)
		grade := 1
		if rng.Float64() < r {
			grade = 3
			switch u := rng.Float64(); {
			case u < hard:
				grade = 2
			case u < hard+easy*(0.5+r):
				grade = 4
			}
		}
		card = append(card, Review{Grade: grade, Days: elapsed, At: nextAt})
		ts, td = tp.next(ts, td, elapsed, grade, &st)
		as, ad = ap.next(as, ad, elapsed, grade, &st)
		repeat = grade == 1 && !repeat
		lastDay, lastAt = nd, nextAt
	}
	return card
}

// Cards returns the logs of sims.
func Cards(sims []SimCard) []Card {
	out := make([]Card, len(sims))
	for i, s := range sims {
		out[i] = s.Reviews
	}
	return out
}

// Reviews counts the reviews of cards.
func Reviews(cards []Card) int {
	n := 0
	for _, c := range cards {
		n += len(c)
	}
	return n
}
