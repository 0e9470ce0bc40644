package attack

import (
	"math"
	"sort"
	"time"
)

// Delivery is a real message delivered, as the adversary learns it (the moment it reached the
// recipient's provider), with the ground truth of who sent it, for scoring.
type Delivery struct {
	At     time.Time
	Sender string
}

// DelayModel is what the adversary knows of a message's time in the network: Hops delays, each
// exponential of mean Mean (the consensus's mean_delay), so the total is Erlang(Hops, 1/Mean).
type DelayModel struct {
	Hops int
	Mean time.Duration
}

// pdf is the Erlang density at d.
func (m DelayModel) pdf(d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	x := d.Seconds() / m.Mean.Seconds()
	k := float64(m.Hops)
	lg, _ := math.Lgamma(k)
	return math.Exp((k-1)*math.Log(x) - x - lg)
}

// Window is how far back a delivery's sender is looked for: beyond 6 means of the total delay
// the density is negligible.
func (m DelayModel) Window() time.Duration {
	return time.Duration(float64(m.Hops) * 6 * float64(m.Mean))
}

// TimingResult is the timing-correlation attack's outcome.
type TimingResult struct {
	Users int
	// First is the proportion of deliveries whose true sender was ranked first.
	First Rate
	// Chance is 1/Users; Ratio is First over Chance.
	Chance, Ratio float64
	// MeanRank is the true sender's mean rank (1 = first; chance (Users+1)/2), and
	// MeanRankSE its standard error: a mean rank several standard errors below chance is a
	// signal even when First cannot resolve it.
	MeanRank, MeanRankSE float64
}

// TimingCorrelation scores, for each delivery, every user by the sum over the frames the user's
// link sent in the window before the delivery of the delay density at their distance: the
// likelihood, up to a constant, that one of them was the message, against the user sending
// nothing. sends maps a user to the times of the frames its client sent, sorted.
func TimingCorrelation(sends map[string][]time.Time, deliveries []Delivery, m DelayModel) TimingResult {
	users := make([]string, 0, len(sends))
	for u := range sends {
		users = append(users, u)
	}
	sort.Strings(users)
	res := TimingResult{Users: len(users)}
	if len(users) == 0 {
		return res
	}
	var succ, rankSum, rankSq float64
	n := 0
	w := m.Window()
	for _, d := range deliveries {
		if _, ok := sends[d.Sender]; !ok {
			continue
		}
		scores := map[string]float64{}
		for _, u := range users {
			ts := sends[u]
			i := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(d.At.Add(-w)) })
			s := 0.0
			for ; i < len(ts) && ts[i].Before(d.At); i++ {
				s += m.pdf(d.At.Sub(ts[i]))
			}
			scores[u] = s
		}
		truth := scores[d.Sender]
		higher, ties := 0, 0
		for _, u := range users {
			switch {
			case scores[u] > truth:
				higher++
			case scores[u] == truth:
				ties++ // the sender itself included
			}
		}
		if higher == 0 {
			succ += 1 / float64(ties)
		}
		rank := float64(higher) + float64(ties+1)/2
		rankSum += rank
		rankSq += rank * rank
		n++
	}
	res.First = wilson(succ, n)
	res.Chance = 1 / float64(len(users))
	res.Ratio = res.First.Value() / res.Chance
	if n > 1 {
		res.MeanRank = rankSum / float64(n)
		v := (rankSq - float64(n)*res.MeanRank*res.MeanRank) / float64(n-1)
		res.MeanRankSE = math.Sqrt(max(v, 0) / float64(n))
	}
	return res
}
