package attack

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/privacy/entropy"
)

// Delivered is a real message as the recipients' providers see it: when, and to whom.
type Delivered struct {
	At time.Time
	To string
}

// DisclosureResult is the statistical disclosure attack's outcome.
type DisclosureResult struct {
	Target   string
	Contacts int
	// Rounds is the number of the target's sends used; Round their observation window.
	Rounds int
	Round  time.Duration
	// Found is the share of the target's true contacts among the attack's top Contacts
	// recipients (trials: the contacts); Chance is that share for a random set of that size.
	Found  Rate
	Chance float64
	Method string
}

// Disclosure runs the statistical disclosure attack (Danezis, "Statistical Disclosure
// Attacks", 2003) on target. Each round is the window of length round after one of the target's
// sends (given to the adversary: see Method); the recipients delivered to in rounds are counted
// against the background, the mean counts of windows of the same length over the whole run.
// The users with the largest excess are the guessed contacts.
func Disclosure(target string, contacts []string, users []string, sends []time.Time, deliveries []Delivered, round time.Duration, from, to time.Time) DisclosureResult {
	res := DisclosureResult{Target: target, Contacts: len(contacts), Round: round,
		Method: fmt.Sprintf("the adversary is given the moments the target's client wrote a real packet (from the tracer; the global passive observer cannot see them, attack (b)), and counts the recipients of the real messages delivered in the %v after each, against the mean over all windows of that length; the target's contacts are guessed as the users with the largest excess. It shows what mixing alone gives once the sending times leak (for example from the target's own mail program).", round)}
	if len(users) < 2 || len(contacts) == 0 {
		return res
	}
	sort.Slice(deliveries, func(i, j int) bool { return deliveries[i].At.Before(deliveries[j].At) })
	count := func(a, b time.Time) map[string]float64 {
		m := map[string]float64{}
		i := sort.Search(len(deliveries), func(i int) bool { return !deliveries[i].At.Before(a) })
		for ; i < len(deliveries) && deliveries[i].At.Before(b); i++ {
			m[deliveries[i].To]++
		}
		return m
	}
	obs := map[string]float64{}
	for _, s := range sends {
		if s.Before(from) || !s.Add(round).Before(to) {
			continue
		}
		res.Rounds++
		for u, n := range count(s, s.Add(round)) {
			obs[u] += n
		}
	}
	// The background per window: all deliveries over the span, scaled to one window.
	total := count(from, to)
	scale := float64(round) / float64(to.Sub(from))
	scores := map[string]float64{}
	for _, u := range users {
		if u != target {
			scores[u] = obs[u]/max(float64(res.Rounds), 1) - total[u]*scale
		}
	}
	return rankContacts(res, contacts, users, scores)
}

// Posterior is a delivered real message as a long-term adversary scores it: its recipient, and
// the probability the adversary's pool model gives the watched user as its sender
// (entropy.Delivered.WatchProb, with entropy.Config.Watch set).
type Posterior struct {
	To string
	P  float64
}

// Posteriors turns the tracker's delivered messages into Posteriors; the recipient is the part
// of the message name (Events: "recipient/id") before the slash.
func Posteriors(ds []entropy.Delivered) []Posterior {
	out := make([]Posterior, 0, len(ds))
	for _, d := range ds {
		to, _, _ := strings.Cut(d.Message, "/")
		out = append(out, Posterior{To: to, P: d.WatchProb})
	}
	return out
}

// PosteriorDisclosure is the long-term disclosure attack without the target's sending times:
// each delivered message's recipient is credited with the probability that the target sent
// it, which the adversary's pool model computes from everything it sees (and from a corrupt
// node's mapping, if it has one). A recipient's score is its credit minus what it would get if
// the credit were spread over the messages regardless of their recipient (the target's total
// credit times the recipient's share of all messages); the target's contacts are guessed as the
// users with the largest scores. Over many messages this is the statistical disclosure attack
// with the rounds weighted by the per-message anonymity the mixes leave (Danezis 2003; Troncoso
// et al., "Perfect Matching Disclosure Attacks", 2008, use the same per-message posteriors).
func PosteriorDisclosure(target string, contacts, users []string, msgs []Posterior, adversary string) DisclosureResult {
	res := DisclosureResult{Target: target, Contacts: len(contacts), Rounds: len(msgs),
		Method: "every delivered message's recipient is credited with the probability that the target sent it, from the pool model of " + adversary + "; a recipient's score is its credit beyond its share of all messages; no sending time is given"}
	if len(users) < 2 || len(contacts) == 0 || len(msgs) == 0 {
		return res
	}
	credit, count := map[string]float64{}, map[string]float64{}
	total := 0.0
	for _, m := range msgs {
		credit[m.To] += m.P
		count[m.To]++
		total += m.P
	}
	scores := map[string]float64{}
	for _, u := range users {
		if u != target {
			scores[u] = credit[u] - total*count[u]/float64(len(msgs))
		}
	}
	return rankContacts(res, contacts, users, scores)
}

// rankContacts fills res's Found and Chance from the top len(contacts) users by score (ties in
// name order).
func rankContacts(res DisclosureResult, contacts, users []string, scores map[string]float64) DisclosureResult {
	type score struct {
		u string
		v float64
	}
	var ss []score
	for u, v := range scores {
		ss = append(ss, score{u, v})
	}
	sort.Slice(ss, func(i, j int) bool {
		if ss[i].v != ss[j].v {
			return ss[i].v > ss[j].v
		}
		return ss[i].u < ss[j].u
	})
	truth := map[string]bool{}
	for _, c := range contacts {
		truth[c] = true
	}
	found := 0
	for _, s := range ss[:min(len(contacts), len(ss))] {
		if truth[s.u] {
			found++
		}
	}
	res.Found = wilson(float64(found), len(contacts))
	res.Chance = float64(len(contacts)) / float64(len(users)-1)
	return res
}
