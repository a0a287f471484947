// Replays review histories through ts-fsrs for fsrs's differential test
// (engine/core/tsfsrs_test.go). Reads one JSON object from stdin:
//   {"configs": {name: ts-fsrs parameters}, "histories": [{"config": name,
//    "reviews": [{"at": unix ms, "grade": 1-4}, ...]}, ...]}
// and writes, per history, the card after every review: state, learning
// step, due (unix ms), stability, difficulty, scheduled and elapsed days,
// and good_days: the interval ts-fsrs gives Good's stability (the input of
// Anki's answer_easy rule, which ts-fsrs does not apply).
import { fsrs, createEmptyCard, Rating } from "ts-fsrs";

// ts-fsrs logs (console.debug on migrating a 19-weight vector): keep stdout
// for the result.
for (const level of ["log", "info", "debug", "warn"]) console[level] = console.error;

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const req = JSON.parse(input);

const schedulers = {};
for (const [name, params] of Object.entries(req.configs)) {
  schedulers[name] = fsrs(params);
}

const out = req.histories.map((h) => {
  const f = schedulers[h.config];
  if (!f) throw new Error(`unknown config ${h.config}`);
  let card = createEmptyCard(new Date(h.reviews[0].at));
  return h.reviews.map((r) => {
    const preview = f.repeat(card, new Date(r.at));
    const next = preview[r.grade].card;
    const good = preview[Rating.Good].card;
    card = next;
    return {
      state: next.state,
      step: next.learning_steps,
      due: next.due.getTime(),
      s: next.stability,
      d: next.difficulty,
      days: next.scheduled_days,
      elapsed: next.elapsed_days,
      good_days: f.next_interval(good.stability, 0),
    };
  });
});
process.stdout.write(JSON.stringify(out));
