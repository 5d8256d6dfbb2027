package keepstore

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are a server's Prometheus metrics, in a registry of its own so
// that several servers can share a process.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytesIn  prometheus.Counter
	bytesOut prometheus.Counter
	inflight prometheus.Gauge
	cut      *prometheus.CounterVec
	handler  http.Handler

	workItems    *prometheus.CounterVec
	trashEmptied prometheus.Counter
	repaired     prometheus.Counter
	corrupt      prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keepstore_requests_total",
			Help: "HTTP requests served, by method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keepstore_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by method.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"method"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keepstore_bytes_in_total",
			Help: "Request body bytes read.",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keepstore_bytes_out_total",
			Help: "Response body bytes written.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keepstore_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		cut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keepstore_uploads_cut_total",
			Help: "Uploads cut off with 408 for arriving slower than the minimum rate: reason \"slow\" when their allowance ran out, \"evicted\" when another upload took their slot.",
		}, []string{"reason"}),
		workItems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keepstore_work_items_total",
			Help: "Pull and trash list items carried out, by list and outcome (done, skipped, failed).",
		}, []string{"list", "outcome"}),
		trashEmptied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keepstore_trash_deleted_total",
			Help: "Trashed blocks deleted by the sweep after their trash lifetime.",
		}),
		repaired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keepstore_blocks_repaired_total",
			Help: "Stored copies that failed their hash and were replaced by an upload of the right data.",
		}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keepstore_corrupt_blocks_total",
			Help: "Stored copies found to fail their hash on read, and moved to the trash.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.bytesIn, m.bytesOut, m.inflight, m.cut,
		m.workItems, m.trashEmptied, m.repaired, m.corrupt, volumeCollector{s}, workCollector{s})
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) observe(method string, status int, in, out int64, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodOptions:
	default:
		method = "other" // bound the label's cardinality
	}
	m.requests.WithLabelValues(method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(method).Observe(d.Seconds())
	m.bytesIn.Add(float64(in))
	m.bytesOut.Add(float64(out))
}

// workItem counts a pull or trash list item carried out.
func (m *metrics) workItem(list string, o outcome) {
	m.workItems.WithLabelValues(list, [...]string{done: "done", skipped: "skipped", failed: "failed"}[o]).Inc()
}

var (
	workQueuedDesc = prometheus.NewDesc("keepstore_work_queued",
		"Pull or trash list items not yet started.", []string{"list"}, nil)
	workInProgressDesc = prometheus.NewDesc("keepstore_work_in_progress",
		"Pull or trash list items being carried out.", []string{"list"}, nil)
)

// workCollector reads the work lists at scrape time.
type workCollector struct{ s *Server }

func (c workCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- workQueuedDesc
	ch <- workInProgressDesc
}

func (c workCollector) Collect(ch chan<- prometheus.Metric) {
	for list, st := range map[string]WorkStatus{"pull": c.s.pulls.status(), "trash": c.s.trashes.status()} {
		ch <- prometheus.MustNewConstMetric(workQueuedDesc, prometheus.GaugeValue, float64(st.Queued), list)
		ch <- prometheus.MustNewConstMetric(workInProgressDesc, prometheus.GaugeValue, float64(st.InProgress), list)
	}
}

// uploadCut counts an upload cut off for its rate.
func (m *metrics) uploadCut(evicted bool) {
	reason := "slow"
	if evicted {
		reason = "evicted"
	}
	m.cut.WithLabelValues(reason).Inc()
}

var (
	volUsedDesc = prometheus.NewDesc("keepstore_volume_used_bytes",
		"Bytes of blocks stored on the volume.", []string{"volume", "path"}, nil)
	volBlocksDesc = prometheus.NewDesc("keepstore_volume_blocks",
		"Blocks stored on the volume.", []string{"volume", "path"}, nil)
	volCapacityDesc = prometheus.NewDesc("keepstore_volume_capacity_bytes",
		"Configured capacity of the volume (0: unlimited).", []string{"volume", "path"}, nil)
	volFreeDesc = prometheus.NewDesc("keepstore_volume_free_bytes",
		"Free space on the volume's filesystem (-1: unknown).", []string{"volume", "path"}, nil)
	volReservedDesc = prometheus.NewDesc("keepstore_volume_reserved_bytes",
		"Bytes received by writes in flight to the volume, not yet stored.", []string{"volume", "path"}, nil)
	volMissingDesc = prometheus.NewDesc("keepstore_volumes_missing",
		"Configured volumes the server could not open at start and serves without (see /_status).", nil, nil)
)

// volumeCollector reads volume usage at scrape time.
type volumeCollector struct{ s *Server }

func (c volumeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- volUsedDesc
	ch <- volBlocksDesc
	ch <- volCapacityDesc
	ch <- volFreeDesc
	ch <- volReservedDesc
	ch <- volMissingDesc
}

func (c volumeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.s.mounts {
		u, _ := m.vol.Usage(context.Background())
		for _, v := range []struct {
			d *prometheus.Desc
			n int64
		}{{volUsedDesc, u.UsedBytes}, {volBlocksDesc, u.Blocks}, {volCapacityDesc, u.CapacityBytes}, {volFreeDesc, u.FreeBytes}, {volReservedDesc, u.ReservedBytes}} {
			ch <- prometheus.MustNewConstMetric(v.d, prometheus.GaugeValue, float64(v.n), m.id, m.path)
		}
	}
	ch <- prometheus.MustNewConstMetric(volMissingDesc, prometheus.GaugeValue, float64(len(c.s.missing)))
}
