package main

import (
	"os"
	"strconv"
	"strings"
	"sync"
)

// Option names. The first eight are libsecsipid's; ConfigFile is stirgate's
// way in for what the secsipid API has no place for (x5u lab hosts, TLS
// roots for x5u, preloads, offline mode, number rules).
const (
	optCacheDirPath = "CacheDirPath"
	optCacheExpires = "CacheExpires"
	optCertVerify   = "CertVerify"
	optCertCAFile   = "CertCAFile"
	optCertCAInter  = "CertCAInter"
	optCertCRLFile  = "CertCRLFile"
	optAttrsVerify  = "AttrsVerify"
	optX5U          = "x5u"
	optConfigFile   = "ConfigFile"
)

// CertVerify bits, as libsecsipid defines them.
const (
	verifyTime   = 1 << 0
	verifySystem = 1 << 1
	verifyCAFile = 1 << 2
	verifyInter  = 1 << 3
	verifyCRL    = 1 << 4
)

// envConfigFile names a stirgate TOML file for processes whose script
// cannot be edited to add a libopt: the library reads it once at load.
const envConfigFile = "STIRGATE_SECSIPID_CONFIG"

// options are the library-wide settings. Comparable, so that a setter
// that changes nothing (the secsipid module calls SetFileCacheOptions
// before every check) keeps the built verifier and its warm cache.
type options struct {
	cacheDirPath string
	cacheExpires int
	certVerify   int
	certCAFile   string
	certCAInter  string
	certCRLFile  string
	attrsVerify  int
	x5u          string
	configFile   string
}

func defaultOptions() options {
	return options{cacheExpires: 3600, attrsVerify: 1, configFile: os.Getenv(envConfigFile)}
}

// settings holds the options and the generation they were last changed
// in; engines are built per generation.
type settings struct {
	mu   sync.Mutex
	opts options
	gen  uint64
}

func (s *settings) get() (options, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts, s.gen
}

func (s *settings) update(f func(*options) int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.opts
	ret := f(&o)
	if ret == retOK && o != s.opts {
		s.opts = o
		s.gen++
	}
	return ret
}

func (s *settings) setS(name, val string) int {
	return s.update(func(o *options) int {
		switch name {
		case optCacheDirPath:
			o.cacheDirPath = val
		case optCertCAFile:
			o.certCAFile = val
		case optCertCAInter:
			o.certCAInter = val
		case optCertCRLFile:
			o.certCRLFile = val
		case optX5U:
			o.x5u = val
		case optConfigFile:
			o.configFile = val
		default:
			return retErr
		}
		return retOK
	})
}

func (s *settings) setN(name string, val int) int {
	return s.update(func(o *options) int {
		switch name {
		case optCacheExpires:
			if val < 0 {
				return retErr
			}
			o.cacheExpires = val
		case optCertVerify:
			if val < 0 || val > 31 {
				return retErr
			}
			o.certVerify = val
		case optAttrsVerify:
			o.attrsVerify = val
		default:
			return retErr
		}
		return retOK
	})
}

// setV takes "name=value". The original indexes the split result without
// checking it, so a libopt without '=' panics the worker; here it is -1.
func (s *settings) setV(nameVal string) int {
	name, val, ok := strings.Cut(nameVal, "=")
	if !ok {
		return retErr
	}
	name, val = strings.TrimSpace(name), strings.TrimSpace(val)
	switch name {
	case optCacheExpires, optCertVerify, optAttrsVerify:
		n, err := strconv.Atoi(val)
		if err != nil {
			return retErr
		}
		return s.setN(name, n)
	}
	return s.setS(name, val)
}

// getN returns an integer option's value, or -1 for a name that is not
// an integer option.
func (s *settings) getN(name string) int {
	o, _ := s.get()
	switch name {
	case optCacheExpires:
		return o.cacheExpires
	case optCertVerify:
		return o.certVerify
	case optAttrsVerify:
		return o.attrsVerify
	}
	return retErr
}

func (s *settings) setFileCache(dir string, expires int) int {
	return s.update(func(o *options) int {
		o.cacheDirPath = dir
		if expires >= 0 {
			o.cacheExpires = expires
		}
		return retOK
	})
}
