//! `causeway_db_pool_connections`: the database pools' connections, read at each scrape.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, gauge::ConstGauge},
};

use crate::store::Store;

/// Reads the writer and reader pools of a store when Prometheus scrapes.
#[derive(Debug)]
pub(super) struct PoolCollector(Store);

impl PoolCollector {
    pub(super) fn new(store: Store) -> Self {
        Self(store)
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "db_pool_connections",
            "Database connections open in each pool (writer, reader), in use or idle",
            None,
            MetricType::Gauge,
        )?;
        for usage in self.0.pool_usage() {
            let idle = i64::try_from(usage.idle).unwrap_or(i64::MAX);
            let in_use = (i64::from(usage.open) - idle).max(0);
            for (state, value) in [("in_use", in_use), ("idle", idle)] {
                let labels = [("pool", usage.pool), ("state", state)];
                ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
