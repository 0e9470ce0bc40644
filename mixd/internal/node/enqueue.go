package node

import (
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/provider"
)

// maxEnqueueBatch bounds the items one commit of the queue writer takes, and the items waiting
// for it (within provider.MaxEnqueueBatch).
const maxEnqueueBatch = 256

// queueWriter is the provider's one writer of user queues: the delivery workers hand it the
// replies (ACKs, loop echoes) and queue messages for users, and it commits every item waiting
// in one transaction (provider.Store.EnqueueBatch), the way the survey service commits its
// submissions (issue 17). A worker that committed each item itself held the worker for the
// store's two fdatasyncs; with a handful of workers the provider then queued a handful of items
// per commit whatever the load, and the other final hops waited behind them.
//
// Nothing is promised before the commit: an item is not visible to a retrieve until its batch is
// committed (it is not in the store before), and the delivered and dropped counts are taken
// from the commit's results.
type queueWriter struct {
	// in is bounded: anyone can send packets to a user's queue service, and each item holds a
	// payload. When it is full the delivery workers wait (and behind them the dispatch loop and
	// the delay queue, which are bounded too); nothing is dropped for it.
	in      chan *queued
	seconds prometheus.Histogram
	items   prometheus.Histogram
}

// queued is an item for a user's queue, or, with flushed set, a marker the writer closes once
// everything queued before it is committed (tests).
type queued struct {
	user    string
	item    *provider.Item
	label   string // the service label of mixd_packets_delivered_total
	flushed chan struct{}
}

func newQueueWriter(reg prometheus.Registerer) *queueWriter {
	w := &queueWriter{
		in: make(chan *queued, maxEnqueueBatch),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mixd_queue_commit_seconds",
			Help:    "Time of one group commit of items to the users' queues.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms to 4 s
		}),
		items: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mixd_queue_commit_items",
			Help:    "Items in one group commit to the users' queues (those refused for a full queue or an unknown user included; a batch refused whole is not committed and not counted); its count is the number of commits.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 to 256 (maxEnqueueBatch)
		}),
	}
	reg.MustRegister(w.seconds, w.items)
	return w
}

// enqueue hands an item for user's queue to the queue writer; it waits only while the writer's
// input is full. An item that ctx's end keeps out is counted as dropped at shutdown.
func (n *Node) enqueue(ctx context.Context, user string, it *provider.Item, label string) {
	select {
	case n.qw.in <- &queued{user: user, item: it, label: label}:
	case <-ctx.Done():
		n.m.dropped.WithLabelValues("shutdown").Inc()
	}
}

// enqueueLoop is the queue writer (see queueWriter): it commits the items the delivery workers
// queue, up to maxEnqueueBatch at a time, until ctx ends. Then it waits for delivered, which
// returns once no delivery worker can queue anything more, and commits what is left before it
// returns, so that every item a worker handed over is committed or counted as dropped.
// (Items a crash keeps out are lost without a count, as the packets in the delay queue are:
// nothing was acknowledged for them, and their senders retransmit what needs an answer.)
func (n *Node) enqueueLoop(ctx context.Context, delivered func()) {
	batch := make([]*queued, 0, maxEnqueueBatch)
	for {
		select {
		case <-ctx.Done():
			delivered()
			for {
				if batch = n.takeQueued(batch[:0]); len(batch) == 0 {
					return
				}
				n.commitQueued(batch)
			}
		case q := <-n.qw.in:
			n.commitQueued(n.takeQueued(append(batch[:0], q)))
		}
	}
}

// takeQueued appends to batch the items waiting for the writer, without waiting, up to
// maxEnqueueBatch in all.
func (n *Node) takeQueued(batch []*queued) []*queued {
	for len(batch) < maxEnqueueBatch {
		select {
		case q := <-n.qw.in:
			batch = append(batch, q)
		default:
			return batch
		}
	}
	return batch
}

// commitQueued commits batch in one transaction and counts each item by its result.
func (n *Node) commitQueued(batch []*queued) {
	items := make([]provider.Enqueued, 0, len(batch))
	for _, q := range batch {
		if q.flushed == nil {
			items = append(items, provider.Enqueued{User: q.user, Item: q.item})
		}
	}
	var res []error
	var err error
	if len(items) > 0 {
		start := time.Now()
		res, err = n.store.EnqueueBatch(items, n.cfg.Provider.QueueLimit)
		switch {
		case err != nil:
			if ok, held := n.serviceLog.allow("queue commit", time.Now()); ok {
				n.log.Error("queue commit failed; items dropped", "items", len(items), "err", err, "similar_lines_held_back", held)
			}
		case slices.Contains(res, nil): // else every item was refused, and nothing committed
			n.qw.seconds.Observe(time.Since(start).Seconds())
			n.qw.items.Observe(float64(len(items)))
		}
	}
	i := 0
	for _, q := range batch {
		if q.flushed != nil {
			close(q.flushed)
			continue
		}
		switch {
		case err != nil:
			n.m.dropped.WithLabelValues("queue:error").Inc()
		case res[i] != nil:
			n.m.dropped.WithLabelValues("queue:" + errorKind(res[i])).Inc()
			n.log.Debug("enqueue failed", "user", q.user, "err", res[i])
		default:
			n.m.delivered.WithLabelValues(q.label).Inc()
		}
		i++
	}
	clear(batch) // so that the committed payloads are not held until their slots are reused
}

// flushQueue waits until every item queued before it is committed (tests).
func (n *Node) flushQueue(ctx context.Context) error {
	q := &queued{flushed: make(chan struct{})}
	select {
	case n.qw.in <- q:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-q.flushed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
