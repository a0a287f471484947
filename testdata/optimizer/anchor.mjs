// anchor.mjs runs fsrs-rs's optimiser (npm @open-spaced-repetition/binding)
// on the review logs fsrs/optimize's tests write, so both optimisers see
// the same items.
//
// Usage: node anchor.mjs input.json  (prints one JSON object)
// input: {cards: [[[grade, days], ...], ...],
//         train: [[card, idx], ...], test: [[card, idx], ...],   // items in time order
//         evaluate: [[21 weights], ...], longTermOnly: bool}   // longTermOnly: enableShortTerm false
// output: {params: [21], seconds, fitted: {logLoss, rmseBins},
//          evaluated: [{logLoss, rmseBins}, ...]}   // on the test items
import { readFileSync } from 'node:fs'
import { computeParameters, FSRSBinding, FSRSBindingItem, FSRSBindingReview } from '@open-spaced-repetition/binding'

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const cards = input.cards.map((c) => c.map(([g, d]) => new FSRSBindingReview(g, d)))
const items = (list) => (list ?? []).map(([c, i]) => new FSRSBindingItem(cards[c].slice(0, i + 1)))
const train = items(input.train)
const test = items(input.test)

const start = process.hrtime.bigint()
const params = train.length > 0 ? await computeParameters(train, { enableShortTerm: !input.longTermOnly, numRelearningSteps: 1 }) : []
const seconds = Number(process.hrtime.bigint() - start) / 1e9
const evaluate = (w) => {
  const m = new FSRSBinding(w).evaluate(test)
  return { logLoss: m.logLoss, rmseBins: m.rmseBins }
}
process.stdout.write(JSON.stringify({
  params,
  seconds,
  fitted: params.length > 0 ? evaluate(params) : null,
  evaluated: (input.evaluate ?? []).map(evaluate),
}) + '\n')
