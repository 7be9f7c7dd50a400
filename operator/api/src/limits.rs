//! The seven limits of a run: their names, built-in defaults and ceilings, how requested
//! limits are resolved against a Runtime and the operator's ceilings, and the units each API
//! speaks. The one definition: the operator, the shim (every surface) and the runner use it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One of the seven limits. Knows its name in the Execution spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitField {
    WallTimeMs,
    CpuTimeMs,
    MemoryMiB,
    Processes,
    OutputBytes,
    FileSizeKiB,
    StackKiB,
}

impl LimitField {
    /// Every limit, in the spec's order.
    pub const ALL: [LimitField; 7] = [
        LimitField::WallTimeMs,
        LimitField::CpuTimeMs,
        LimitField::MemoryMiB,
        LimitField::Processes,
        LimitField::OutputBytes,
        LimitField::FileSizeKiB,
        LimitField::StackKiB,
    ];

    /// Its name in `spec.limits` (camelCase, as in the CRD).
    pub fn name(self) -> &'static str {
        match self {
            LimitField::WallTimeMs => "wallTimeMs",
            LimitField::CpuTimeMs => "cpuTimeMs",
            LimitField::MemoryMiB => "memoryMiB",
            LimitField::Processes => "processes",
            LimitField::OutputBytes => "outputBytes",
            LimitField::FileSizeKiB => "fileSizeKiB",
            LimitField::StackKiB => "stackKiB",
        }
    }
}

impl Serialize for LimitField {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl fmt::Display for LimitField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Resource limits of one run. Every field is optional.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Wall-clock time limit in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_time_ms: Option<u64>,
    /// CPU time limit (user + system) in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_time_ms: Option<u64>,
    /// Memory limit in MiB (peak resident memory of the program).
    #[serde(default, rename = "memoryMiB", skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Maximum number of processes and threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    /// Maximum bytes captured from each of stdout and stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
    /// Largest file the program may write, in KiB.
    #[serde(default, rename = "fileSizeKiB", skip_serializing_if = "Option::is_none")]
    pub file_size_kib: Option<u64>,
    /// Stack size limit (RLIMIT_STACK) of the program, in KiB.
    #[serde(default, rename = "stackKiB", skip_serializing_if = "Option::is_none")]
    pub stack_kib: Option<u64>,
}

/// Limits with every value decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedLimits {
    pub wall_time_ms: u64,
    pub cpu_time_ms: u64,
    pub memory_mib: u64,
    pub processes: u64,
    pub output_bytes: u64,
    pub file_size_kib: u64,
    pub stack_kib: u64,
}

impl Limits {
    pub fn get(&self, field: LimitField) -> Option<u64> {
        match field {
            LimitField::WallTimeMs => self.wall_time_ms,
            LimitField::CpuTimeMs => self.cpu_time_ms,
            LimitField::MemoryMiB => self.memory_mib,
            LimitField::Processes => self.processes,
            LimitField::OutputBytes => self.output_bytes,
            LimitField::FileSizeKiB => self.file_size_kib,
            LimitField::StackKiB => self.stack_kib,
        }
    }

    pub fn set(&mut self, field: LimitField, value: Option<u64>) {
        let slot = match field {
            LimitField::WallTimeMs => &mut self.wall_time_ms,
            LimitField::CpuTimeMs => &mut self.cpu_time_ms,
            LimitField::MemoryMiB => &mut self.memory_mib,
            LimitField::Processes => &mut self.processes,
            LimitField::OutputBytes => &mut self.output_bytes,
            LimitField::FileSizeKiB => &mut self.file_size_kib,
            LimitField::StackKiB => &mut self.stack_kib,
        };
        *slot = value;
    }

    /// Resolve requested limits: each unset field takes `defaults`, then the built-in
    /// default; the maximum is the smaller of `max` (the Runtime's) and `cap` (the
    /// operator's). A requested value above the maximum or equal to zero is an error; a
    /// default above the maximum is lowered to it.
    pub fn resolve(
        requested: Option<&Limits>,
        defaults: &Limits,
        max: &Limits,
        cap: &ResolvedLimits,
    ) -> Result<ResolvedLimits, LimitError> {
        let req = requested.copied().unwrap_or_default();
        let maximum = ResolvedLimits::maximum(max, cap);
        ResolvedLimits::try_from_fn(|field| {
            let maximum = maximum.get(field);
            match req.get(field) {
                Some(v) if v == 0 || v > maximum => Err(LimitError { field, requested: v, maximum }),
                Some(v) => Ok(v),
                None => Ok(defaults.get(field).unwrap_or(ResolvedLimits::DEFAULT.get(field)).min(maximum)),
            }
        })
    }
}

impl ResolvedLimits {
    /// Built-in defaults: the seed executor's 128 MiB and one CPU, a 5 s wall clock, Judge0's
    /// 64000 KB stack.
    pub const DEFAULT: ResolvedLimits = ResolvedLimits {
        wall_time_ms: 5_000,
        cpu_time_ms: 3_000,
        memory_mib: 128,
        processes: 64,
        output_bytes: 64 * 1024,
        file_size_kib: 4 * 1024,
        stack_kib: 64_000,
    };
    /// Built-in ceiling when neither the Runtime nor the operator sets a maximum (the
    /// default of the `--cap-*` flags).
    pub const CEILING: ResolvedLimits = ResolvedLimits {
        wall_time_ms: 30_000,
        cpu_time_ms: 20_000,
        memory_mib: 1024,
        processes: 256,
        output_bytes: 4 * 1024 * 1024,
        file_size_kib: 64 * 1024,
        stack_kib: 256 * 1024,
    };

    pub fn get(&self, field: LimitField) -> u64 {
        match field {
            LimitField::WallTimeMs => self.wall_time_ms,
            LimitField::CpuTimeMs => self.cpu_time_ms,
            LimitField::MemoryMiB => self.memory_mib,
            LimitField::Processes => self.processes,
            LimitField::OutputBytes => self.output_bytes,
            LimitField::FileSizeKiB => self.file_size_kib,
            LimitField::StackKiB => self.stack_kib,
        }
    }

    /// Limits built field by field.
    pub fn from_fn(mut f: impl FnMut(LimitField) -> u64) -> ResolvedLimits {
        match Self::try_from_fn(|field| Ok::<u64, std::convert::Infallible>(f(field))) {
            Ok(l) => l,
            Err(never) => match never {},
        }
    }

    /// Limits built field by field; the first error wins (in [`LimitField::ALL`] order).
    pub fn try_from_fn<E>(mut f: impl FnMut(LimitField) -> Result<u64, E>) -> Result<ResolvedLimits, E> {
        Ok(ResolvedLimits {
            wall_time_ms: f(LimitField::WallTimeMs)?,
            cpu_time_ms: f(LimitField::CpuTimeMs)?,
            memory_mib: f(LimitField::MemoryMiB)?,
            processes: f(LimitField::Processes)?,
            output_bytes: f(LimitField::OutputBytes)?,
            file_size_kib: f(LimitField::FileSizeKiB)?,
            stack_kib: f(LimitField::StackKiB)?,
        })
    }

    /// The most a request may ask for: a Runtime's maximum, each unset one the ceiling, none
    /// above the ceiling.
    pub fn maximum(max: &Limits, cap: &ResolvedLimits) -> ResolvedLimits {
        ResolvedLimits::from_fn(|f| max.get(f).unwrap_or(cap.get(f)).min(cap.get(f)))
    }

    /// Limits of a compile stage: the Runtime's `compileLimits`, each unset one the run's
    /// limit, none above the ceiling.
    pub fn for_compile(compile: &Limits, run: &ResolvedLimits, cap: &ResolvedLimits) -> ResolvedLimits {
        ResolvedLimits::from_fn(|f| compile.get(f).unwrap_or(run.get(f)).min(cap.get(f)))
    }

    /// As the runner receives them.
    pub fn stage(&self) -> crate::protocol::StageLimits {
        crate::protocol::StageLimits {
            wall_time_ms: self.wall_time_ms,
            cpu_time_ms: self.cpu_time_ms,
            memory_kib: self.memory_mib * 1024,
            processes: self.processes,
            output_bytes: self.output_bytes,
            file_size_kib: self.file_size_kib,
            stack_kib: self.stack_kib,
        }
    }
}

/// A limit that is above what is allowed, or zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitError {
    pub field: LimitField,
    pub requested: u64,
    pub maximum: u64,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requested == 0 {
            write!(f, "limits.{} must be greater than 0", self.field)
        } else {
            write!(f, "limits.{} = {} exceeds the maximum of {}", self.field, self.requested, self.maximum)
        }
    }
}

impl std::error::Error for LimitError {}

/// The operator's ceilings on every limit, as command-line flags. The operator and the shim
/// both take them (same flags, same environment variables), so that the shim refuses at once
/// what the operator would refuse later.
#[cfg(feature = "clap")]
#[derive(clap::Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitCaps {
    /// Ceiling on wall time, ms (a Runtime's maximum cannot exceed it).
    #[arg(long, env = "RCE_CAP_WALL_TIME_MS", default_value_t = ResolvedLimits::CEILING.wall_time_ms)]
    pub cap_wall_time_ms: u64,
    /// Ceiling on CPU time, ms.
    #[arg(long, env = "RCE_CAP_CPU_TIME_MS", default_value_t = ResolvedLimits::CEILING.cpu_time_ms)]
    pub cap_cpu_time_ms: u64,
    /// Ceiling on memory, MiB.
    #[arg(long, env = "RCE_CAP_MEMORY_MIB", default_value_t = ResolvedLimits::CEILING.memory_mib)]
    pub cap_memory_mib: u64,
    /// Ceiling on processes.
    #[arg(long, env = "RCE_CAP_PROCESSES", default_value_t = ResolvedLimits::CEILING.processes)]
    pub cap_processes: u64,
    /// Ceiling on output bytes (each of stdout and stderr).
    #[arg(long, env = "RCE_CAP_OUTPUT_BYTES", default_value_t = ResolvedLimits::CEILING.output_bytes)]
    pub cap_output_bytes: u64,
    /// Ceiling on the file size limit, KiB.
    #[arg(long, env = "RCE_CAP_FILE_SIZE_KIB", default_value_t = ResolvedLimits::CEILING.file_size_kib)]
    pub cap_file_size_kib: u64,
    /// Ceiling on the stack size limit, KiB.
    #[arg(long, env = "RCE_CAP_STACK_KIB", default_value_t = ResolvedLimits::CEILING.stack_kib)]
    pub cap_stack_kib: u64,
}

#[cfg(feature = "clap")]
impl LimitCaps {
    pub fn limits(&self) -> ResolvedLimits {
        ResolvedLimits {
            wall_time_ms: self.cap_wall_time_ms,
            cpu_time_ms: self.cap_cpu_time_ms,
            memory_mib: self.cap_memory_mib,
            processes: self.cap_processes,
            output_bytes: self.cap_output_bytes,
            file_size_kib: self.cap_file_size_kib,
            stack_kib: self.cap_stack_kib,
        }
    }
}

/// The limits in the units of the Judge0 and Piston APIs: which of their request fields
/// carries each limit, how a value in their unit becomes rce's, and how a maximum is said back
/// in their unit. One table per API.
pub mod units {
    use super::LimitField;

    /// Judge0 CE: seconds (fractions allowed) for times, KB (KiB, as isolate reads them) for
    /// memory and files.
    pub mod judge0 {
        use super::LimitField;

        /// The request field that carries `field`, and `maximum` said in that field's unit.
        /// `None`: Judge0 has no such field (outputBytes).
        pub fn field(field: LimitField, maximum: u64) -> Option<(&'static str, String)> {
            Some(match field {
                LimitField::CpuTimeMs => ("cpu_time_limit", secs(maximum)),
                LimitField::WallTimeMs => ("wall_time_limit", secs(maximum)),
                LimitField::MemoryMiB => ("memory_limit", mib_to_kb(maximum).to_string()),
                LimitField::Processes => ("max_processes_and_or_threads", maximum.to_string()),
                LimitField::FileSizeKiB => ("max_file_size", maximum.to_string()),
                LimitField::StackKiB => ("stack_limit", maximum.to_string()),
                LimitField::OutputBytes => return None,
            })
        }

        /// Seconds to milliseconds, rounded, at least 1.
        pub fn secs_to_ms(secs: f64) -> u64 {
            (secs * 1000.0).round().max(1.0) as u64
        }

        /// KB to MiB, rounded up, at least 1.
        pub fn kb_to_mib(kb: f64) -> u64 {
            (kb / 1024.0).ceil().max(1.0) as u64
        }

        /// A count or a KB size, rounded up.
        pub fn whole(v: f64) -> u64 {
            v.ceil() as u64
        }

        /// MiB in KB, as Judge0 reports memory limits.
        pub fn mib_to_kb(mib: u64) -> u64 {
            mib * 1024
        }

        /// Milliseconds as Judge0's decimal seconds: "0.031", "1.5", "5.0".
        pub fn secs(ms: u64) -> String {
            let s = format!("{:.3}", ms as f64 / 1000.0);
            let t = s.trim_end_matches('0');
            if t.ends_with('.') {
                format!("{t}0")
            } else {
                t.to_string()
            }
        }
    }

    /// Piston v2: milliseconds for times, bytes for memory.
    pub mod piston {
        use super::LimitField;

        /// The request field that carries `field`, and `maximum` said in its unit. `None`:
        /// Piston has no such field.
        pub fn field(field: LimitField, maximum: u64) -> Option<(&'static str, String)> {
            Some(match field {
                LimitField::WallTimeMs => ("run_timeout", maximum.to_string()),
                LimitField::CpuTimeMs => ("run_cpu_time", maximum.to_string()),
                LimitField::MemoryMiB => ("run_memory_limit", mib_to_bytes(maximum).to_string()),
                LimitField::Processes
                | LimitField::OutputBytes
                | LimitField::FileSizeKiB
                | LimitField::StackKiB => return None,
            })
        }

        /// Bytes to MiB, rounded up.
        pub fn bytes_to_mib(bytes: u64) -> u64 {
            bytes.div_ceil(1024 * 1024)
        }

        pub fn mib_to_bytes(mib: u64) -> u64 {
            mib * 1024 * 1024
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn judge0_and_piston_units() {
            assert_eq!(judge0::secs_to_ms(1.5), 1500);
            assert_eq!(judge0::secs_to_ms(0.0001), 1);
            assert_eq!(judge0::kb_to_mib(128_000.0), 125);
            assert_eq!(judge0::kb_to_mib(1.0), 1);
            assert_eq!(judge0::secs(1500), "1.5");
            assert_eq!(judge0::secs(2000), "2.0");
            assert_eq!(judge0::secs(31), "0.031");
            assert_eq!(judge0::field(LimitField::MemoryMiB, 512), Some(("memory_limit", "524288".into())));
            assert_eq!(judge0::field(LimitField::OutputBytes, 1), None);
            assert_eq!(piston::bytes_to_mib(1), 1);
            assert_eq!(piston::bytes_to_mib(64 * 1024 * 1024), 64);
            assert_eq!(piston::field(LimitField::MemoryMiB, 1), Some(("run_memory_limit", "1048576".into())));
            assert_eq!(piston::field(LimitField::Processes, 1), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_take_defaults_and_refuse_excess() {
        let defaults = Limits { memory_mib: Some(256), ..Default::default() };
        let max = Limits { memory_mib: Some(512), wall_time_ms: Some(10_000), ..Default::default() };
        let r = Limits::resolve(None, &defaults, &max, &ResolvedLimits::CEILING).unwrap();
        assert_eq!(r.memory_mib, 256);
        assert_eq!(r.wall_time_ms, 5_000);
        let req = Limits { memory_mib: Some(600), ..Default::default() };
        let e = Limits::resolve(Some(&req), &defaults, &max, &ResolvedLimits::CEILING).unwrap_err();
        assert_eq!(e.field, LimitField::MemoryMiB);
        assert_eq!(e.maximum, 512);
        assert!(e.to_string().contains("exceeds the maximum of 512"), "{e}");
        let zero = Limits { processes: Some(0), ..Default::default() };
        assert!(Limits::resolve(Some(&zero), &defaults, &max, &ResolvedLimits::CEILING).is_err());
        // The operator's cap wins over a larger Runtime maximum.
        let cap = ResolvedLimits { wall_time_ms: 2_000, ..ResolvedLimits::CEILING };
        let r = Limits::resolve(None, &defaults, &max, &cap).unwrap();
        assert_eq!(r.wall_time_ms, 2_000);
    }

    #[test]
    fn every_field_has_its_spec_name_and_round_trips() {
        let names: Vec<&str> = LimitField::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            ["wallTimeMs", "cpuTimeMs", "memoryMiB", "processes", "outputBytes", "fileSizeKiB", "stackKiB"]
        );
        let mut l = Limits::default();
        for (i, f) in LimitField::ALL.into_iter().enumerate() {
            l.set(f, Some(i as u64 + 1));
        }
        // The serialized names are the fields' names, and get/set address the same field.
        let json = serde_json::to_value(l).unwrap();
        for (i, f) in LimitField::ALL.into_iter().enumerate() {
            assert_eq!(json[f.name()], i as u64 + 1, "{f}");
            assert_eq!(l.get(f), Some(i as u64 + 1));
        }
        let r = ResolvedLimits::from_fn(|f| LimitField::ALL.iter().position(|g| *g == f).unwrap() as u64);
        for (i, f) in LimitField::ALL.into_iter().enumerate() {
            assert_eq!(r.get(f), i as u64);
        }
    }

    #[test]
    fn maximum_and_compile_limits() {
        let max = Limits { memory_mib: Some(4096), processes: Some(8), ..Default::default() };
        let m = ResolvedLimits::maximum(&max, &ResolvedLimits::CEILING);
        assert_eq!((m.memory_mib, m.processes, m.wall_time_ms), (1024, 8, 30_000));
        let run = ResolvedLimits::DEFAULT;
        let c = ResolvedLimits::for_compile(
            &Limits { wall_time_ms: Some(60_000), memory_mib: Some(384), ..Default::default() },
            &run,
            &ResolvedLimits::CEILING,
        );
        assert_eq!((c.wall_time_ms, c.memory_mib, c.cpu_time_ms), (30_000, 384, run.cpu_time_ms));
        assert_eq!(run.stage().memory_kib, 128 * 1024);
    }
}
