package fsrs

import (
	"fmt"
	"sync"
	"time"
	_ "time/tzdata" // IANA zones without depending on the host's zoneinfo

	"github.com/srsproxy/srsproxy/srs"
)

// dayClock counts elapsed days: the day boundaries crossed between two
// instants, a day starting at hour o'clock local time in loc (Anki's "next
// day starts at"), or whole 24-hour periods when legacy is set.
type dayClock struct {
	legacy bool
	loc    *time.Location
	hour   int
}

// zones caches loaded locations by name: loading parses zone data.
var zones sync.Map // string → *time.Location

// LoadTimezone returns the IANA time zone name ("" is UTC). It returns an
// error for an unknown name and for "Local", which would make schedules
// depend on the host's configuration.
func LoadTimezone(name string) (*time.Location, error) {
	if name == "" {
		name = "UTC"
	}
	if v, ok := zones.Load(name); ok {
		return v.(*time.Location), nil
	}
	if name == "Local" {
		return nil, fmt.Errorf("fsrs: timezone %q: the host's zone is not accepted; name an IANA zone", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("fsrs: timezone %q is not an IANA time zone", name)
	}
	zones.Store(name, loc)
	return loc, nil
}

// newDayClock validates a season's day rule.
func newDayClock(tz string, hour int) (dayClock, error) {
	loc, err := LoadTimezone(tz)
	if err != nil {
		return dayClock{}, err
	}
	if hour == srs.DayStartLegacy {
		return dayClock{legacy: true, loc: loc}, nil
	}
	if hour < 0 || hour > 23 {
		return dayClock{}, fmt.Errorf("fsrs: day start hour %d not in [0, 23]", hour)
	}
	return dayClock{loc: loc, hour: hour}, nil
}

// day is the number of the day an instant (unix ms) falls in: local dates
// counted from 1970-01-01, a date's day running from its start hour to the
// next date's. Comparing the local wall clock with the hour (rather than
// adding 24 hours to a boundary) keeps days of 23 and 25 hours at DST
// changes; a start hour skipped by a change begins the day when the clock
// jumps past it, and one repeated begins the day at its first occurrence.
func (c dayClock) day(ms int64) int64 {
	t := time.UnixMilli(ms).In(c.loc)
	y, m, d := t.Date()
	n := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
	if t.Hour() < c.hour {
		n--
	}
	return n
}

// elapsed is the number of days between two reviews, last ≤ now (unix ms).
func (c dayClock) elapsed(last, now int64) int {
	if now <= last {
		return 0
	}
	if c.legacy {
		return int((now - last) / dayMS)
	}
	return int(c.day(now) - c.day(last))
}
