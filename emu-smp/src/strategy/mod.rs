//! Strategy axes (DESIGN.md, "Strategy axes"): each axis is one file that declares its
//! values once (name, what it models, its source) and answers the questions the kernel
//! model asks of it, so that no `==` on a strategy is spread over the kernel's files.
//!
//! Adding an axis is adding a file: an enum implementing [`Axis`], with its methods, and
//! its name in the `axes!` list below (which makes it a field of [`Strategy`], a
//! command-line flag, a line of `emu list strategies` and a key of the stats' config).

mod broken;
mod cpumask;
mod flush;
mod lazymm;
mod mmcid;
mod preempt;
mod walkersync;

pub use broken::BrokenPolicy;
pub use cpumask::CpumaskPolicy;
pub use flush::FlushTransport;
pub use lazymm::{LazyCleanup, LazyMmPolicy};
pub use mmcid::MmCidVariant;
pub use preempt::Preemption;
pub use walkersync::{SyncAction, WalkerSync};

/// A value of an axis, declared once.
#[derive(Clone, Copy, Debug)]
pub struct Value<T: 'static> {
    /// The value.
    pub value: T,
    /// Its name on the command line.
    pub name: &'static str,
    /// What it models.
    pub what: &'static str,
    /// Where it comes from.
    pub source: &'static str,
}

/// A strategy axis: an enum of the values a run chooses from.
pub trait Axis: Copy + PartialEq + Sized + 'static {
    /// The axis's name: its command-line flag without the dashes.
    const AXIS: &'static str;
    /// What the axis chooses.
    const ABOUT: &'static str;
    /// Test-only axes are left out of listings and help.
    const HIDDEN: bool = false;
    /// The default.
    const DEFAULT: Self;
    /// Every value, in the order listings show them.
    const VALUES: &'static [Value<Self>];

    /// The value's name.
    fn name(self) -> &'static str {
        Self::VALUES.iter().find(|v| v.value == self).map_or("?", |v| v.name)
    }

    /// The value named `s`.
    fn parse(s: &str) -> Option<Self> {
        Self::VALUES.iter().find(|v| v.name == s).map(|v| v.value)
    }
}

/// A named strategy value with its description and source, for `emu list strategies`.
#[derive(Clone, Copy, Debug)]
pub struct StrategyInfo {
    /// Axis.
    pub axis: &'static str,
    /// Name on the command line.
    pub name: &'static str,
    /// What it models.
    pub what: &'static str,
    /// Where it comes from.
    pub source: &'static str,
}

/// An axis as listings and parsers see it.
#[derive(Clone, Copy, Debug)]
pub struct AxisInfo {
    /// Its name (the flag).
    pub axis: &'static str,
    /// What it chooses.
    pub about: &'static str,
    /// The default value's name.
    pub default: &'static str,
    /// Test-only.
    pub hidden: bool,
}

/// A value that names nothing on its axis.
#[derive(Debug, thiserror::Error)]
#[error("unknown --{axis} `{value}` (see `emu list strategies`)")]
pub struct StrategyError {
    /// The axis.
    pub axis: String,
    /// The value given.
    pub value: String,
}

macro_rules! axes {
    ($($field:ident : $ty:ty),* $(,)?) => {
        /// The strategy of a run, one value per axis.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Strategy {
            $(
                #[doc = concat!("`--", stringify!($field), "`.")]
                pub $field: $ty,
            )*
        }

        impl Default for Strategy {
            fn default() -> Self {
                Strategy { $($field: <$ty as Axis>::DEFAULT),* }
            }
        }

        impl Strategy {
            /// Every axis.
            pub fn axes() -> Vec<AxisInfo> {
                vec![$(AxisInfo {
                    axis: <$ty as Axis>::AXIS,
                    about: <$ty as Axis>::ABOUT,
                    default: <$ty as Axis>::DEFAULT.name(),
                    hidden: <$ty as Axis>::HIDDEN,
                }),*]
            }

            /// Every value of every axis.
            pub fn infos() -> Vec<StrategyInfo> {
                let mut v = Vec::new();
                $(
                    for x in <$ty as Axis>::VALUES {
                        v.push(StrategyInfo {
                            axis: <$ty as Axis>::AXIS,
                            name: x.name,
                            what: x.what,
                            source: x.source,
                        });
                    }
                )*
                v
            }

            /// Sets axis `axis` to the value named `value`.
            pub fn set(&mut self, axis: &str, value: &str) -> Result<(), StrategyError> {
                let err = || StrategyError { axis: axis.into(), value: value.into() };
                $(
                    if axis == <$ty as Axis>::AXIS {
                        self.$field = <$ty as Axis>::parse(value).ok_or_else(err)?;
                        return Ok(());
                    }
                )*
                Err(err())
            }

            /// (axis, value name) of every axis, in declaration order.
            pub fn names(&self) -> Vec<(&'static str, &'static str)> {
                vec![$((<$ty as Axis>::AXIS, self.$field.name())),*]
            }
        }
    };
}

axes!(
    cpumask: CpumaskPolicy,
    flush: FlushTransport,
    lazy_mm: LazyMmPolicy,
    mm_cid: MmCidVariant,
    walker_sync: WalkerSync,
    preempt: Preemption,
    broken: BrokenPolicy
);

impl Strategy {
    /// `axis=value` pairs of the non-default, non-hidden axes and of the main two, as
    /// oracle violations and labels name a strategy.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        for ((axis, name), info) in self.names().into_iter().zip(Self::axes()) {
            if axis == "cpumask" || axis == "flush" || name != info.default {
                parts.push(format!("{axis}={name}"));
            }
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_parses_back_and_every_axis_has_its_default() {
        for info in Strategy::infos() {
            let mut s = Strategy::default();
            s.set(info.axis, info.name).expect("listed values parse");
            assert!(s.names().contains(&(info.axis, info.name)));
        }
        let names: Vec<_> = Strategy::default().names();
        assert_eq!(
            names,
            vec![
                ("cpumask", "lazy"),
                ("flush", "ipi"),
                ("lazy-mm", "refcount"),
                ("mm-cid", "current"),
                ("walker-sync", "linux"),
                ("preempt", "voluntary"),
                ("broken", "none")
            ]
        );
        assert!(Strategy::default().set("cpumask", "lazier").is_err());
        assert!(Strategy::default().set("nope", "lazy").is_err());
        assert_eq!(Strategy::default().label(), "cpumask=lazy flush=ipi");
    }
}
