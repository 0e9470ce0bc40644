// Package capacity sizes a network from measured costs (issue 17): how many mixes per layer
// and how many providers a number of users needs at given consensus parameters, by CPU, by
// bandwidth and (providers) by memory, at a stated utilisation that leaves the rest as
// headroom. Its inputs are a JSON file (inputs.json beside this file holds the figures
// measured on the project's machine, docs/CAPACITY.md says where each comes from); the
// command internal/scale/cmd/capacity prints the model's report.
package capacity

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Inputs are the model's inputs. Rates are per second.
type Inputs struct {
	Users int `json:"users"`
	// The consensus parameters: per user lambda_P (send slots), lambda_L (loops), lambda_D
	// (drops); per mix lambda_M (its own loops). Retrieves is each client's retrieve
	// exchanges per second (1 / the retrieve interval).
	LambdaP   float64 `json:"lambda_p"`
	LambdaL   float64 `json:"lambda_l"`
	LambdaD   float64 `json:"lambda_d"`
	LambdaM   float64 `json:"lambda_m"`
	Retrieves float64 `json:"retrieves"`
	// RealFraction is the share of lambda_P slots that carry a fragment to be acknowledged:
	// each adds a SURB reply through the mix layers to the sender's provider. 0 is a network
	// of idle users (cover traffic only), 1 every user sending all the time.
	RealFraction float64 `json:"real_fraction"`
	// Layers is the number of mix layers (the route is provider, the layers, provider).
	Layers int `json:"layers"`
	// FrameBytes is the size of every link frame (docs/spec/wire.md section 2.1).
	FrameBytes int `json:"frame_bytes"`
	// MixCPUPerPacketUS is a mix's CPU time per packet forwarded, in microseconds (unwrap,
	// replay check, delay, both TLS records).
	MixCPUPerPacketUS float64 `json:"mix_cpu_per_packet_us"`
	// ProviderCPUPerPacketUS is a provider's CPU time per Sphinx packet it handles (an unwrap
	// on the way in or out), ProviderCPUPerRetrieveUS per retrieve exchange it answers.
	ProviderCPUPerPacketUS   float64 `json:"provider_cpu_per_packet_us"`
	ProviderCPUPerRetrieveUS float64 `json:"provider_cpu_per_retrieve_us"`
	// ProviderRSSPerUserKB is a provider's resident memory per online user.
	ProviderRSSPerUserKB float64 `json:"provider_rss_per_user_kb"`
	// One machine: cores, memory, link speed (each direction), and the share of each the
	// sizing may use; the rest is headroom for bursts, epoch changes and failures.
	Cores       int     `json:"cores"`
	MemoryGB    float64 `json:"memory_gb"`
	LinkGbps    float64 `json:"link_gbps"`
	Utilisation float64 `json:"utilisation"`
	// Source says where the measured figures come from (kept in the report).
	Source string `json:"source"`
}

// ReadInputs parses and checks inputs; unknown keys are an error.
func ReadInputs(r io.Reader) (*Inputs, error) {
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	var in Inputs
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("capacity inputs: %w", err)
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return &in, nil
}

// Validate checks every input's range.
func (in *Inputs) Validate() error {
	pos := map[string]float64{
		"users": float64(in.Users), "lambda_p": in.LambdaP, "retrieves": in.Retrieves, "layers": float64(in.Layers),
		"frame_bytes": float64(in.FrameBytes), "mix_cpu_per_packet_us": in.MixCPUPerPacketUS,
		"provider_cpu_per_packet_us": in.ProviderCPUPerPacketUS, "cores": float64(in.Cores), "memory_gb": in.MemoryGB,
		"link_gbps": in.LinkGbps, "utilisation": in.Utilisation,
	}
	for k, v := range pos {
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("capacity inputs: %s must be positive", k)
		}
	}
	nonneg := map[string]float64{
		"lambda_l": in.LambdaL, "lambda_d": in.LambdaD, "lambda_m": in.LambdaM, "real_fraction": in.RealFraction,
		"provider_cpu_per_retrieve_us": in.ProviderCPUPerRetrieveUS, "provider_rss_per_user_kb": in.ProviderRSSPerUserKB,
	}
	for k, v := range nonneg {
		if !(v >= 0) || math.IsInf(v, 0) {
			return fmt.Errorf("capacity inputs: %s must not be negative", k)
		}
	}
	if in.RealFraction > 1 || in.Utilisation > 1 {
		return errors.New("capacity inputs: real_fraction and utilisation are at most 1")
	}
	return nil
}

// Sizing is one kind of node's count by each resource, and the count needed (the largest).
type Sizing struct {
	ByCPU, ByBandwidth, ByMemory int
	Needed                       int
}

func (s *Sizing) settle() { s.Needed = max(s.ByCPU, s.ByBandwidth, s.ByMemory, 1) }

// Result is the model's answer with the loads it came from.
type Result struct {
	// Per user: packets it sends into the network each second (cover and real), and the
	// SURB replies its real fragments cause.
	UserPackets, UserReplies float64
	// UserLinkUp and UserLinkDown are a user's link in bytes per second.
	UserLinkUp, UserLinkDown float64
	// LayerPackets is the packets per second through each mix layer (every one crosses every
	// layer), mix loops included.
	LayerPackets float64
	// ProviderPacketsPerUser is the Sphinx packets per second a provider handles per user
	// (its users' packets in, and as many out of the last layer toward providers);
	// ProviderCPUPerUser the CPU seconds per second per user.
	ProviderPacketsPerUser, ProviderCPUPerUser float64
	Mixes                                      Sizing // per layer
	Providers                                  Sizing
	// UsersPerProvider is Users / Providers.Needed.
	UsersPerProvider float64
}

// Compute sizes the network. Mix loops are counted once the mix count is known (they add
// LambdaM per mix to every layer), by iterating to a fixed point.
func Compute(in *Inputs) (*Result, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	r := &Result{}
	u := float64(in.Users)
	r.UserPackets = in.LambdaP + in.LambdaL + in.LambdaD
	r.UserReplies = in.LambdaP * in.RealFraction
	frame := float64(in.FrameBytes)
	r.UserLinkUp = (r.UserPackets + in.Retrieves) * frame
	r.UserLinkDown = in.Retrieves * frame
	cpuPerMachine := float64(in.Cores) * in.Utilisation
	bytesPerMachine := in.LinkGbps * 1e9 / 8 * in.Utilisation

	mixes := 1
	for range 100 {
		r.LayerPackets = u*(r.UserPackets+r.UserReplies) + in.LambdaM*float64(mixes*in.Layers)
		m := Sizing{
			ByCPU: ceil(r.LayerPackets * in.MixCPUPerPacketUS * 1e-6 / cpuPerMachine),
			// Each direction carries every packet once.
			ByBandwidth: ceil(r.LayerPackets * frame / bytesPerMachine),
		}
		m.settle()
		r.Mixes = m
		if m.Needed == mixes {
			break
		}
		mixes = m.Needed
	}

	// A provider's users send UserPackets each in (one unwrap each) and, providers being
	// alike, receive as many from the last layer (loops, drops, real fragments), plus the SURB
	// replies: made by the recipients' providers and unwrapped by the senders'.
	r.ProviderPacketsPerUser = 2*r.UserPackets + 2*r.UserReplies
	r.ProviderCPUPerUser = (r.ProviderPacketsPerUser*in.ProviderCPUPerPacketUS + in.Retrieves*in.ProviderCPUPerRetrieveUS) * 1e-6
	in1 := r.UserLinkUp + (r.UserPackets+r.UserReplies)*frame // from users, from the last layer
	out1 := r.UserLinkDown + (r.UserPackets+r.UserReplies)*frame
	p := Sizing{
		ByCPU:       ceil(u * r.ProviderCPUPerUser / cpuPerMachine),
		ByBandwidth: ceil(u * max(in1, out1) / bytesPerMachine),
		ByMemory:    ceil(u * in.ProviderRSSPerUserKB * 1e3 / (in.MemoryGB * 1e9 * in.Utilisation)),
	}
	p.settle()
	r.Providers = p
	r.UsersPerProvider = u / float64(p.Needed)
	return r, nil
}

// ceil rounds up, with a tolerance for float error so that an exact fit is not one more.
func ceil(x float64) int { return int(math.Ceil(x - 1e-9)) }
