package bench

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times: USER_HZ, 100 on Linux.
const clockTick = 10 * time.Millisecond

// ProcCPU is the CPU time (user and system) a process has used so far, or 0 when it
// cannot be read (no /proc, or the process is gone).
func ProcCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count from after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// After the name: state(3) ppid(4) … utime(14) stime(15), so index 11 and 12 here.
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(u+st) * clockTick
}

// Children finds this process's child processes whose command line contains each
// given substring: name -> pid. The emulators are this test binary's children, so
// another test run's emulators on the same machine are not counted.
func Children(match map[string]string) map[string]int {
	out := map[string]int{}
	self := os.Getpid()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(self) {
			continue
		}
		cmd, _ := os.ReadFile(d + "/cmdline")
		for name, sub := range match {
			if strings.Contains(string(cmd), sub) {
				out[name] = pid
			}
		}
	}
	return out
}

// CPUSample is the CPU time each named process has used so far.
type CPUSample map[string]time.Duration

// SampleCPU reads the CPU time of each named process.
func SampleCPU(pids map[string]int) CPUSample {
	s := CPUSample{}
	for name, pid := range pids {
		s[name] = ProcCPU(pid)
	}
	return s
}

// Sub is the CPU time used between before and s, by process.
func (s CPUSample) Sub(before CPUSample) CPUSample {
	out := CPUSample{}
	for k, v := range s {
		out[k] = v - before[k]
	}
	return out
}
