/* judge_rate.c: retry backoff and token buckets (--rpm, --tpm). */
#include "config.h"
#include "judge/judge.h"

double judge_backoff_ms(int attempt, double base_ms, double max_ms, long retry_after_ms, double u)
{
	if (retry_after_ms >= 0) {
		double cap = max_ms * 10;
		return (double)retry_after_ms > cap ? cap : (double)retry_after_ms;
	}
	if (attempt < 1)
		attempt = 1;
	double d = base_ms;
	for (int i = 1; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	if (u < 0)
		u = 0;
	if (u >= 1)
		u = 0.999999;
	return d / 2 + d / 2 * u;
}

void judge_bucket_init(judge_bucket *b, double rate, double capacity, double now)
{
	b->rate = rate;
	b->capacity = capacity > 0 ? capacity : 1;
	b->level = b->capacity;
	b->last = now;
}

static void refill(judge_bucket *b, double now)
{
	if (now > b->last) {
		b->level += (now - b->last) * b->rate;
		if (b->level > b->capacity)
			b->level = b->capacity;
		b->last = now;
	}
}

double judge_bucket_take(judge_bucket *b, double n, double now)
{
	if (b->rate <= 0)
		return 0;
	refill(b, now);
	double need = n < b->capacity ? n : b->capacity;
	if (b->level >= need - 1e-9) {
		b->level -= n;
		return 0;
	}
	return (need - b->level) / b->rate;
}

void judge_bucket_adjust(judge_bucket *b, double delta, double now)
{
	if (b->rate <= 0)
		return;
	refill(b, now);
	b->level += delta;
	if (b->level > b->capacity)
		b->level = b->capacity;
}
