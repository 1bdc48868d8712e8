// Full-jitter exponential backoff ("Exponential Backoff And Jitter", AWS
// Architecture Blog, 2015): a delay drawn uniformly from [0, cap), where the
// cap doubles with each attempt from `min` up to `max`. After an outage every
// client reconnects at once otherwise; the jitter spreads them out.
export function backoff(attempt, min, max, random = Math.random) {
  const cap = Math.min(max, min * Math.pow(2, Math.min(attempt, 30)))
  return Math.floor(random() * cap)
}
