package capacity

import (
	"math"
	"os"
	"strings"
	"testing"
)

func example() *Inputs {
	return &Inputs{
		Users: 1000, LambdaP: 2, LambdaL: 0.5, LambdaD: 0.5, LambdaM: 0.5, Retrieves: 4, RealFraction: 0.5,
		Layers: 3, FrameBytes: 10000, MixCPUPerPacketUS: 500, ProviderCPUPerPacketUS: 100, ProviderCPUPerRetrieveUS: 50,
		ProviderRSSPerUserKB: 100, Cores: 2, MemoryGB: 0.1, LinkGbps: 0.32, Utilisation: 0.5,
	}
}

// The arithmetic, worked by hand for example():
//
//	user: 3 packets/s, 1 reply/s; link up (3+4)*10000 = 70,000 B/s, down 40,000 B/s
//	layer: 1000*4 = 4,000 packets/s, plus every mix's loops (0.5/s each) through every layer
//	mixes by CPU: 4000*500e-6 = 2 CPU-s/s over 2 cores*0.5 = 1 per machine: 2, plus the
//	  loops of 3 mixes (1 per layer to start): 4001.5 packets/s -> 3 per layer; then 9 mixes'
//	  loops: 4004.5 packets/s -> 3 (fixed point)
//	mixes by bandwidth: 4004.5*10000 B/s over 0.32e9/8*0.5 = 20e6 B/s: 2.002 -> 3
//	provider: 2*3+2*1 = 8 packets/s per user, 8*100e-6 + 4*50e-6 = 0.001 CPU-s/s per user:
//	  1000 users 1 CPU-s/s -> 1 machine; in 70,000 + 40,000 = 110,000 B/s per user, out
//	  40,000 + 40,000: 110e6 / 20e6 = 5.5 -> 6; memory 1000*100e3 = 1e8 B over 0.05e9: 2
func TestComputeByHand(t *testing.T) {
	r, err := Compute(example())
	if err != nil {
		t.Fatal(err)
	}
	if r.UserPackets != 3 || r.UserReplies != 1 || r.UserLinkUp != 70000 || r.UserLinkDown != 40000 {
		t.Errorf("user: %+v", r)
	}
	if r.LayerPackets != 4004.5 {
		t.Errorf("layer packets %v, want 4004.5", r.LayerPackets)
	}
	if r.Mixes != (Sizing{ByCPU: 3, ByBandwidth: 3, Needed: 3}) {
		t.Errorf("mixes %+v", r.Mixes)
	}
	if r.ProviderPacketsPerUser != 8 || math.Abs(r.ProviderCPUPerUser-0.001) > 1e-12 {
		t.Errorf("provider per user: %v packets, %v CPU", r.ProviderPacketsPerUser, r.ProviderCPUPerUser)
	}
	if r.Providers != (Sizing{ByCPU: 1, ByBandwidth: 6, ByMemory: 2, Needed: 6}) {
		t.Errorf("providers %+v", r.Providers)
	}
}

// Doubling the users doubles every load, and the counts follow.
func TestComputeScales(t *testing.T) {
	in := example()
	in.LambdaM = 0
	a, _ := Compute(in)
	in.Users *= 2
	b, _ := Compute(in)
	if b.LayerPackets != 2*a.LayerPackets || b.Providers.ByBandwidth != 11 || b.Providers.ByMemory != 4 {
		t.Errorf("1000 users: %+v; 2000: %+v", a, b)
	}
}

func TestReadInputs(t *testing.T) {
	f, err := os.Open("inputs.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in, err := ReadInputs(f)
	if err != nil {
		t.Fatal(err)
	}
	if in.Users != 200000 || in.Source == "" {
		t.Errorf("inputs.json: %+v", in)
	}
	for _, bad := range []string{
		`{"users": 10, "surprise": 1}`,
		`{"users": 0}`,
		strings.Replace(`{"users":1,"lambda_p":2,"retrieves":4,"layers":3,"frame_bytes":1,"mix_cpu_per_packet_us":1,"provider_cpu_per_packet_us":1,"cores":1,"memory_gb":1,"link_gbps":1,"utilisation":1}`, `"utilisation":1`, `"utilisation":1.5`, 1),
		`{"users":1,"lambda_p":2,"lambda_d":-1,"retrieves":4,"layers":3,"frame_bytes":1,"mix_cpu_per_packet_us":1,"provider_cpu_per_packet_us":1,"cores":1,"memory_gb":1,"link_gbps":1,"utilisation":1}`,
	} {
		if _, err := ReadInputs(strings.NewReader(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
