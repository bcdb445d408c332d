package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
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
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	dur := fs.Duration("duration", time.Second, "time per measurement")
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
	order := []string{"raw_sign", "stirgate_sign", "raw_verify", "stirgate_verify"}
	all := runtime.GOMAXPROCS(0)
	var results []benchResult
	get := map[string]benchResult{}
	for _, cores := range uniq(1, all) {
		for _, name := range order {
			r, err := measure(name, cores, *dur, ops[name])
			if err != nil {
				fmt.Fprintf(stderr, "stirgate bench: %v\n", err)
				return exitFail
			}
			results = append(results, r)
			get[fmt.Sprintf("%s/%d", name, cores)] = r
		}
	}
	signRatio := get["stirgate_sign/1"].OpsPerS / get["raw_sign/1"].OpsPerS
	verifyRatio := get["stirgate_verify/1"].OpsPerS / get["raw_verify/1"].OpsPerS
	signRatioAll := get[fmt.Sprintf("stirgate_sign/%d", all)].OpsPerS / get[fmt.Sprintf("raw_sign/%d", all)].OpsPerS
	verifyRatioAll := get[fmt.Sprintf("stirgate_verify/%d", all)].OpsPerS / get[fmt.Sprintf("raw_verify/%d", all)].OpsPerS
	if *asJSON {
		return printJSON(stdout, map[string]any{
			"go":               runtime.Version(),
			"cores":            all,
			"results":          results,
			"sign_ratio":       round3(signRatio),
			"verify_ratio":     round3(verifyRatio),
			"sign_ratio_all":   round3(signRatioAll),
			"verify_ratio_all": round3(verifyRatioAll),
		}, exitOK)
	}
	fmt.Fprintf(stdout, "%-16s %5s %12s %12s\n", "operation", "cores", "ns/op", "ops/s")
	for _, r := range results {
		fmt.Fprintf(stdout, "%-16s %5d %12.0f %12.0f\n", r.Name, r.Cores, r.NsPerOp, r.OpsPerS)
	}
	fmt.Fprintf(stdout, "\nsign ratio   (stirgate/raw, 1 core):  %.3f\n", signRatio)
	fmt.Fprintf(stdout, "verify ratio (stirgate/raw, 1 core):  %.3f  (warm x5u cache)\n", verifyRatio)
	fmt.Fprintf(stdout, "sign ratio   (%d cores): %.3f\nverify ratio (%d cores): %.3f\n", all, signRatioAll, all, verifyRatioAll)
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
	if failed.Load() {
		return benchResult{}, fmt.Errorf("%s failed during measurement", name)
	}
	ops := n.Load()
	return benchResult{
		Name: name, Cores: cores, Ops: ops,
		NsPerOp:  float64(el.Nanoseconds()) / float64(ops) * float64(cores),
		OpsPerS:  float64(ops) / el.Seconds(),
		Duration: el.Round(time.Millisecond).String(),
	}, nil
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
	v, err := cfg.NewVerifier(nil, nil)
	if err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	return s, v, func() { v.Close(); cleanup() }, nil
}
