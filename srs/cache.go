package srs

// The cache port's values: what the engine reads from and writes to a cache
// of card records (backend/redis implements it), in the domain's words.

// CachedCard is a card as a cache holds it. Token is the opaque stored value,
// the expected value of a later compare-and-set ("" when the card is absent).
type CachedCard struct {
	Card  Card
	Token string
}

// CardRead is the answer to reading one card of a user-season.
type CardRead struct {
	Loaded bool // false: the user-season is not cached (load it first)
	Found  bool // the card is cached; Card and Token are valid
	CachedCard
}

// DuePage is a page of a cached user-season's due cards.
type DuePage struct {
	Loaded bool   // false: the user-season is not cached
	Total  int64  // due cards matching the filter
	Cards  []Card // most overdue first, at most the limit
	// NextDue is the earliest due time after the page's "now" of any of the
	// user-season's cards (filter or not), 0 if none: the page stays as it
	// is until then unless a card is written.
	NextDue int64
}

// SwapOutcome is the result of a compare-and-set of one card.
type SwapOutcome int

// Outcomes of a compare-and-set.
const (
	SwapNotLoaded SwapOutcome = -1 // the user-season is no longer cached
	SwapConflict  SwapOutcome = 0  // the card is no longer the expected one
	SwapStored    SwapOutcome = 1
)

// CardPut is one card to write if the cache still holds Expected ("" = absent).
type CardPut struct {
	Expected string
	Card     Card
}
