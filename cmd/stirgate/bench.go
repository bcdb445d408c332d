package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/config"
	"github.com/stirgate/stirgate/core/stir"
)

func init() {
	register("bench", "measure sign and verify against raw ECDSA P-256 on this machine", runBench)
}

// benchResult is one measured operation.
type benchResult struct {
	Name     string  `json:"name"`
	Cores    int     `json:"cores"`
	Ops      int64   `json:"ops"`
	NsPerOp  float64 `json:"ns_per_op"`
	OpsPerS  float64 `json:"ops_per_s"`
	Duration string  `json:"duration"`
	// CPUNsPerOp is process CPU time per operation (user+system, GC
	// included): unlike wall time it does not count time the machine gave
	// to other processes, so ratios stay meaningful on a busy host.
	CPUNsPerOp float64 `json:"cpu_ns_per_op"`

	elapsed time.Duration
	cpu     time.Duration
}

// benchRounds is how many alternating rounds make one measurement.
const benchRounds = 10

func (r benchResult) finish() benchResult {
	r.NsPerOp = float64(r.elapsed.Nanoseconds()) / float64(r.Ops) * float64(r.Cores)
	r.OpsPerS = float64(r.Ops) / r.elapsed.Seconds()
	r.Duration = r.elapsed.Round(time.Millisecond).String()
	r.CPUNsPerOp = float64(r.cpu.Nanoseconds()) / float64(r.Ops)
	return r
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	secsipid := fs.String("secsipid", "", "path of the secsipid_bench harness: also measure Debian's libsecsipid")
	dur := fs.Duration("duration", 4*time.Second, "time per measurement (split into alternating rounds)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	signer, verifier, cleanup, err := benchCore()
	if err != nil {
		fmt.Fprintf(stderr, "stirgate bench: %v\n", err)
		return exitUsage
	}
	defer cleanup()

	from := "sip:+12155550121@bench.example"
	to := "sip:+12155550131@bench.example"
	signed, err := signer.Sign(ctx, core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: stir.AttestFull, OrigID: "9a4e6a1c-7a34-4d55-8d3c-0e5d2e5f1a00"})
	if err != nil {
		fmt.Fprintf(stderr, "stirgate bench: %v\n", err)
		return exitFail
	}
	vreq := core.VerifyRequest{Identity: []string{signed.Identity}, From: from, To: to}
	if r := verifier.Verify(ctx, vreq); r.Result != stir.Pass {
		fmt.Fprintf(stderr, "stirgate bench: warm-up verification failed: %s %s\n", r.Error, r.Detail)
		return exitFail
	}

	key := signer.Credential().Key
	// The same digest the core signs: SHA-256 of a real signing input.
	digest := sha256.Sum256([]byte(signed.Identity))
	rawSig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		fmt.Fprintf(stderr, "stirgate bench: %v\n", err)
		return exitFail
	}
	sreq := core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: stir.AttestFull, OrigID: "9a4e6a1c-7a34-4d55-8d3c-0e5d2e5f1a00"}
	ops := map[string]func() bool{
		"stirgate_sign": func() bool { _, err := signer.Sign(ctx, sreq); return err == nil },
		"raw_sign": func() bool {
			d := sha256.Sum256([]byte(signed.Identity))
			_, err := ecdsa.SignASN1(rand.Reader, key, d[:])
			return err == nil
		},
		"stirgate_verify": func() bool { return verifier.Verify(ctx, vreq).Result == stir.Pass },
		"raw_verify": func() bool {
			d := sha256.Sum256([]byte(signed.Identity))
			return ecdsa.VerifyASN1(&key.PublicKey, d[:], rawSig)
		},
	}
	pairs := [][2]string{{"raw_sign", "stirgate_sign"}, {"raw_verify", "stirgate_verify"}}
	all := runtime.GOMAXPROCS(0)
	var results []benchResult
	get := map[string]benchResult{}
	for _, cores := range uniq(1, all) {
		for _, p := range pairs {
			// Raw and stirgate alternate in short rounds so that load from
			// elsewhere on the machine falls on both alike.
			acc := map[string]*benchResult{}
			for round := 0; round < benchRounds; round++ {
				for _, name := range p {
					r, err := measure(name, cores, *dur/benchRounds, ops[name])
					if err != nil {
						fmt.Fprintf(stderr, "stirgate bench: %v\n", err)
						return exitFail
					}
					if a := acc[name]; a == nil {
						acc[name] = &r
					} else {
						a.Ops += r.Ops
						a.elapsed += r.elapsed
						a.cpu += r.cpu
					}
				}
			}
			for _, name := range p {
				r := acc[name].finish()
				results = append(results, r)
				get[fmt.Sprintf("%s/%d", name, cores)] = r
			}
		}
	}
	one := func(name string) benchResult { return get[name+"/1"] }
	many := func(name string) benchResult { return get[fmt.Sprintf("%s/%d", name, all)] }
	// The ratios are ops per second of one core: inverse CPU time per op.
	signRatio := one("raw_sign").CPUNsPerOp / one("stirgate_sign").CPUNsPerOp
	verifyRatio := one("raw_verify").CPUNsPerOp / one("stirgate_verify").CPUNsPerOp
	signWall := one("stirgate_sign").OpsPerS / one("raw_sign").OpsPerS
	verifyWall := one("stirgate_verify").OpsPerS / one("raw_verify").OpsPerS
	signAll := many("stirgate_sign").OpsPerS / many("raw_sign").OpsPerS
	verifyAll := many("stirgate_verify").OpsPerS / many("raw_verify").OpsPerS
	var ssp *secsipidResult
	if *secsipid != "" {
		if ssp, err = runSecsipid(ctx, *secsipid, signer, *dur/2); err != nil {
			fmt.Fprintf(stderr, "stirgate bench: secsipid: %v\n", err)
			return exitFail
		}
	}
	if *asJSON {
		out := map[string]any{
			"go":                runtime.Version(),
			"cores":             all,
			"results":           results,
			"sign_ratio":        round3(signRatio),
			"verify_ratio":      round3(verifyRatio),
			"sign_ratio_wall":   round3(signWall),
			"verify_ratio_wall": round3(verifyWall),
			"sign_ratio_all":    round3(signAll),
			"verify_ratio_all":  round3(verifyAll),
		}
		if ssp != nil {
			out["secsipid"] = ssp
			out["sign_vs_secsipid"] = round3(ssp.SignCPU / one("stirgate_sign").CPUNsPerOp)
			out["verify_vs_secsipid"] = round3(ssp.VerifyCPU / one("stirgate_verify").CPUNsPerOp)
		}
		return printJSON(stdout, out, exitOK)
	}
	fmt.Fprintf(stdout, "%-16s %5s %12s %12s %14s\n", "operation", "cores", "ns/op", "ops/s", "cpu ns/op")
	for _, r := range results {
		fmt.Fprintf(stdout, "%-16s %5d %12.0f %12.0f %14.0f\n", r.Name, r.Cores, r.NsPerOp, r.OpsPerS, r.CPUNsPerOp)
	}
	fmt.Fprintf(stdout, "\nstirgate ÷ raw crypto/ecdsa P-256, ops/s of one core (by CPU time; wall clock in brackets):\n")
	fmt.Fprintf(stdout, "  sign         %.3f  (%.3f)\n", signRatio, signWall)
	fmt.Fprintf(stdout, "  verify warm  %.3f  (%.3f)\n", verifyRatio, verifyWall)
	fmt.Fprintf(stdout, "on %d cores (wall clock): sign %.3f, verify %.3f\n", all, signAll, verifyAll)
	if ssp != nil {
		fmt.Fprintf(stdout, "\nDebian libsecsipid (secsipidx), CPU ns/op: sign %.0f, verify %.0f (public key given, no x5u)\n", ssp.SignCPU, ssp.VerifyCPU)
		fmt.Fprintf(stdout, "stirgate ÷ secsipid, ops/s of one core:  sign %.3f, verify warm %.3f\n",
			ssp.SignCPU/one("stirgate_sign").CPUNsPerOp, ssp.VerifyCPU/one("stirgate_verify").CPUNsPerOp)
	}
	return exitOK
}

func uniq(a, b int) []int {
	if a == b {
		return []int{a}
	}
	return []int{a, b}
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// measure runs op on `cores` goroutines for about d.
func measure(name string, cores int, d time.Duration, op func() bool) (benchResult, error) {
	var n atomic.Int64
	var failed atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	cpu0 := processCPU()
	start := time.Now()
	for i := 0; i < cores; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for j := 0; j < 16; j++ {
					if !op() {
						failed.Store(true)
						return
					}
				}
				n.Add(16)
			}
		}()
	}
	time.Sleep(d)
	close(stop)
	wg.Wait()
	el := time.Since(start)
	cpu := processCPU() - cpu0
	if failed.Load() {
		return benchResult{}, fmt.Errorf("%s failed during measurement", name)
	}
	return benchResult{Name: name, Cores: cores, Ops: n.Load(), elapsed: el, cpu: cpu}, nil
}

// benchCore builds a signer and verifier on a throw-away lab whose chain is
// preloaded, so the measurement is of stirgate and ECDSA, not the network.
func benchCore() (*core.Signer, *core.Verifier, func(), error) {
	dir, err := os.MkdirTemp("", "stirgate-bench-")
	if err != nil {
		return nil, nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	const x5uURL = "https://certs.bench.example/sp.pem"
	cfg := &config.Config{Lab: config.Lab{Dir: dir}}
	cfg.Signer.X5U = x5uURL
	cfg.Signer.Key = filepath.Join(dir, "sp.key")
	cfg.Signer.Cert = filepath.Join(dir, "sp-chain.pem")
	cfg.X5U.Offline = true
	cfg.X5U.Preload = map[string]string{x5uURL: filepath.Join(dir, "sp-chain.pem")}
	if err := cfg.PrepareLab(time.Now(), nil); err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	s, err := cfg.NewSigner(nil, nil)
	if err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	// The benchmark verifies one token for as long as it runs, which may be
	// longer than iat stays fresh: the verifier's clock stands still.
	v, err := cfg.NewVerifier(fixedClock(time.Now().Unix()), nil)
	if err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	return s, v, func() { v.Close(); cleanup() }, nil
}

// processCPU is the user+system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type secsipidResult struct {
	SignCPU   float64 `json:"sign_cpu_ns_per_op"`
	VerifyCPU float64 `json:"verify_cpu_ns_per_op"`
	SignOps   int64   `json:"sign_ops"`
	VerifyOps int64   `json:"verify_ops"`
}

// runSecsipid runs the C harness against Debian's libsecsipid with the
// bench signer's key, in a process of its own.
func runSecsipid(ctx context.Context, harness string, s *core.Signer, d time.Duration) (*secsipidResult, error) {
	dir, err := os.MkdirTemp("", "stirgate-bench-secsipid-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	kder, err := x509.MarshalPKCS8PrivateKey(s.Credential().Key)
	if err != nil {
		return nil, err
	}
	pder, err := x509.MarshalPKIXPublicKey(&s.Credential().Key.PublicKey)
	if err != nil {
		return nil, err
	}
	kf, pf := filepath.Join(dir, "key.pem"), filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(pf, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o644); err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, harness, kf, pf, strconv.FormatFloat(d.Seconds(), 'f', 3, 64)).Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", harness, err)
	}
	var r secsipidResult
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("%s printed %q: %w", harness, out, err)
	}
	return &r, nil
}
