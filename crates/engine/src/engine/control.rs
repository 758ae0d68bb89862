//! Control-plane operations on stream settings: enhanced monitoring, encryption, resource
//! policies, account settings, record size, capacity mode.

use super::*;
use crate::api_ops::*;

const DAY_MS: i64 = 86_400_000;
/// Successful StartStreamEncryption (and, separately, StopStreamEncryption) calls per rolling day.
const ENCRYPTION_CHANGES_PER_DAY: usize = 25;
/// Capacity-mode switches per stream per rolling day.
const MODE_SWITCHES_PER_DAY: usize = 2;
const ACCOUNT_SETTINGS_KEY: &str = "account_settings";

fn not_active(name: &str, account: &str, status: &str) -> Error {
    Error::ResourceInUse(format!(
        "Stream {name} under account {account} not ACTIVE, instead in state {status}"
    ))
}

fn expand_metrics(requested: &[String]) -> Vec<String> {
    if requested.iter().any(|m| m == "ALL") {
        return SHARD_LEVEL_METRICS.iter().map(|s| s.to_string()).collect();
    }
    let mut out: Vec<String> = Vec::new();
    for m in SHARD_LEVEL_METRICS {
        if requested.iter().any(|r| r == m) {
            out.push(m.to_string());
        }
    }
    out
}

/// Account settings as persisted (one JSON document per account in the settings table).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct AccountSettings {
    commitment_enabled_at: Option<i64>,
    commitment_ends_at: Option<i64>,
}

/// The minimum commitment period once enabled.
const COMMITMENT_MIN_MS: i64 = DAY_MS;

impl Engine {
    /// Marks the stream UPDATING for the configured delay (or not at all when it is zero).
    fn begin_update(&self, meta: &mut StreamMeta) -> Option<i64> {
        let delay = self.inner.cfg.update_stream_delay.as_millis() as i64;
        if delay == 0 {
            return None;
        }
        let until = now(&self.inner) + delay;
        meta.status = "UPDATING".into();
        meta.status_until_ms = until;
        Some(until)
    }

    fn finish_update_later(&self, handle: &StreamHandle, until: Option<i64>) {
        if let Some(until) = until {
            let key = handle.read().meta.key();
            self.schedule_transition(key, until);
        }
    }

    pub async fn enhanced_monitoring(
        &self,
        scope: &Scope,
        input: EnhancedMonitoringInput,
        enable: bool,
    ) -> Result<EnhancedMonitoringOutput> {
        let _guard = self.inner.control.lock().await;
        let (name, handle) = self.resolve(scope, &input.stream)?;
        let account = scope.account.clone();
        let requested = expand_metrics(&input.shard_level_metrics);
        self.update_meta(&handle, |m| {
            if m.status != "ACTIVE" {
                return Err(not_active(&name, &account, &m.status));
            }
            let current = m.shard_level_metrics.clone();
            let desired: Vec<String> = SHARD_LEVEL_METRICS
                .iter()
                .filter(|metric| {
                    let on = current.iter().any(|c| c == *metric);
                    let asked = requested.iter().any(|r| r == *metric);
                    if enable {
                        on || asked
                    } else {
                        on && !asked
                    }
                })
                .map(|s| s.to_string())
                .collect();
            m.shard_level_metrics = desired.clone();
            Ok(EnhancedMonitoringOutput {
                stream_name: m.name.clone(),
                stream_arn: stream_arn(&m.region, &m.account, &m.name),
                current_shard_level_metrics: current,
                desired_shard_level_metrics: desired,
            })
        })
    }

    pub async fn stream_encryption(
        &self,
        scope: &Scope,
        input: StreamEncryptionInput,
        start: bool,
    ) -> Result<()> {
        if input.encryption_type != EncryptionType::Kms {
            return Err(Error::InvalidArgument(format!(
                "Encryption type {} is not supported. Only KMS is supported.",
                input.encryption_type.as_str()
            )));
        }
        let _guard = self.inner.control.lock().await;
        let (name, handle) = self.resolve(scope, &input.stream)?;
        let account = scope.account.clone();
        let t = now(&self.inner);
        let key_number = {
            let ring = self.inner.keyring.read();
            let key = ring.find(&input.key_id).ok_or_else(|| {
                Error::KmsNotFound(format!("Key '{}' does not exist", input.key_id))
            })?;
            if !key.enabled {
                return Err(Error::KmsDisabled(format!("{} is disabled.", key.key_id)));
            }
            key.number
        };
        // No append is in flight while the switch is made, so each shard's switch position
        // is exact: records before it keep their form, records after it take the new one.
        let _writers_drained = handle.gate.write().await;
        let next_positions: Vec<(u32, u64)> = {
            let st = handle.read();
            st.meta
                .shards
                .iter()
                .filter(|s| s.closed.is_none())
                .map(|s| {
                    self.inner
                        .log
                        .next_position(s.queue)
                        .map(|next| (s.index, next))
                        .map_err(log_error)
                })
                .collect::<Result<_>>()?
        };
        let until = self.update_meta(&handle, |m| {
            if m.status != "ACTIVE" {
                return Err(not_active(&name, &account, &m.status));
            }
            m.encryption_changes.retain(|(at, _)| t - at < DAY_MS);
            let recent = m.encryption_changes.iter().filter(|(_, s)| *s == start).count();
            if recent >= ENCRYPTION_CHANGES_PER_DAY {
                return Err(Error::LimitExceeded(format!(
                    "Stream {name} under account {account} has exceeded the maximum of {ENCRYPTION_CHANGES_PER_DAY} encryption {} operations in the past 24 hours.",
                    if start { "enable" } else { "disable" }
                )));
            }
            if start {
                m.encryption_key_id = Some(input.key_id.clone());
            } else {
                if m.encryption_key_id.as_deref() != Some(input.key_id.as_str()) {
                    return Err(Error::InvalidArgument(format!(
                        "The KeyId {} does not match the key used to encrypt stream {name} under account {account}.",
                        input.key_id
                    )));
                }
                m.encryption_key_id = None;
            }
            for (index, next) in &next_positions {
                if let Some(s) = m.shards.iter_mut().find(|s| s.index == *index) {
                    s.encryption.push((*next, start.then_some(key_number)));
                }
            }
            m.encryption_changes.push((t, start));
            Ok(self.begin_update(m))
        })?;
        self.finish_update_later(&handle, until);
        Ok(())
    }

    pub async fn update_max_record_size(
        &self,
        scope: &Scope,
        input: UpdateMaxRecordSizeInput,
    ) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let (name, handle) = self.resolve(scope, &input.stream)?;
        let account = scope.account.clone();
        let until = self.update_meta(&handle, |m| {
            if m.status != "ACTIVE" {
                return Err(not_active(&name, &account, &m.status));
            }
            m.max_record_size_kib = input.max_record_size_kib;
            Ok(self.begin_update(m))
        })?;
        self.finish_update_later(&handle, until);
        Ok(())
    }

    pub async fn update_stream_mode(
        &self,
        scope: &Scope,
        input: UpdateStreamModeInput,
    ) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let stream = StreamRef {
            name: None,
            arn: Some(input.stream_arn.clone()),
        };
        let (name, handle) = self.resolve(scope, &stream)?;
        if input.warm_throughput_mibps.is_some() && !self.commitment_enabled(&scope.account)? {
            return Err(Error::InvalidArgument(
                "WarmThroughputMiBps requires an account with MinimumThroughputBillingCommitment enabled."
                    .into(),
            ));
        }
        let account = scope.account.clone();
        let t = now(&self.inner);
        let (open, on_demand) = self.open_shard_count(scope);
        let shard_limit = self.inner.cfg.shard_limit;
        let on_demand_limit = self.inner.cfg.on_demand_stream_limit;
        let until = self.update_meta(&handle, |m| {
            if m.status != "ACTIVE" {
                return Err(not_active(&name, &account, &m.status));
            }
            let target = input.stream_mode.as_str();
            if m.mode == target {
                return Err(Error::InvalidArgument(format!(
                    "Stream {name} under account {account} is already in {target} mode."
                )));
            }
            // Switches are remembered as encryption changes are: timestamps in the metadata.
            m.mode_switches.retain(|at| t - at < DAY_MS);
            if m.mode_switches.len() >= MODE_SWITCHES_PER_DAY {
                return Err(Error::LimitExceeded(format!(
                    "Stream {name} under account {account} has exceeded the limit of {MODE_SWITCHES_PER_DAY} capacity mode switches in a rolling 24-hour period."
                )));
            }
            let open_here = m.shards.iter().filter(|s| s.closed.is_none()).count() as i64;
            match input.stream_mode {
                StreamMode::Provisioned => {
                    if open + open_here > shard_limit {
                        return Err(Error::LimitExceeded(format!(
                            "This request would exceed the shard limit for the account {account}. Current shard count for the account: {open}. Limit: {shard_limit}."
                        )));
                    }
                }
                StreamMode::OnDemand => {
                    if on_demand + 1 > on_demand_limit {
                        return Err(Error::LimitExceeded(format!(
                            "This request would exceed the limit of {on_demand_limit} on-demand streams for the account {account}."
                        )));
                    }
                }
            }
            m.mode = target.into();
            m.mode_switches.push(t);
            Ok(self.begin_update(m))
        })?;
        self.finish_update_later(&handle, until);
        Ok(())
    }

    pub async fn update_stream_warm_throughput(
        &self,
        scope: &Scope,
        input: UpdateStreamWarmThroughputInput,
    ) -> Result<UpdateStreamWarmThroughputOutput> {
        let (name, handle) = self.resolve(scope, &input.stream)?;
        let mode = handle.read().meta.mode.clone();
        if mode != "ON_DEMAND" {
            return Err(Error::Validation(format!(
                "UpdateStreamWarmThroughput is only supported for data streams with the on-demand capacity mode. Stream {name} under account {} is in {mode} mode.",
                scope.account
            )));
        }
        if !self.commitment_enabled(&scope.account)? {
            return Err(Error::InvalidArgument(
                "WarmThroughputMiBps requires an account with MinimumThroughputBillingCommitment enabled."
                    .into(),
            ));
        }
        // Kinesin has no warm pool to provision: every stream can take what the machine gives.
        Err(Error::InvalidArgument(format!(
            "Warm throughput cannot be provisioned for stream {name}: Kinesin serves every on-demand stream at the machine's capacity."
        )))
    }

    // --- resource policies ----------------------------------------------------------------

    /// The policy slot of a stream or consumer.
    fn policy_slot<'m>(
        meta: &'m mut StreamMeta,
        consumer: &Option<String>,
        arn: &str,
    ) -> Result<&'m mut Option<String>> {
        match consumer {
            None => Ok(&mut meta.resource_policy),
            Some(name) => meta
                .consumers
                .iter_mut()
                .find(|c| &c.name == name)
                .map(|c| &mut c.resource_policy)
                .ok_or_else(|| Error::ResourceNotFound(format!("Resource {arn} not found."))),
        }
    }

    pub async fn put_resource_policy(
        &self,
        scope: &Scope,
        input: PutResourcePolicyInput,
    ) -> Result<()> {
        // Stored as sent, but only if it is a policy Kinesin can evaluate.
        crate::iam::Policy::parse(&input.policy, true)?;
        let _guard = self.inner.control.lock().await;
        let (handle, consumer) = self.resolve_resource(scope, &input.resource_arn)?;
        let arn = input.resource_arn.clone();
        self.update_meta(&handle, |m| {
            *Self::policy_slot(m, &consumer, &arn)? = Some(input.policy);
            Ok(())
        })
    }

    pub fn get_resource_policy(
        &self,
        scope: &Scope,
        input: GetResourcePolicyInput,
    ) -> Result<GetResourcePolicyOutput> {
        let (handle, consumer) = self.resolve_resource(scope, &input.resource_arn)?;
        let mut meta = handle.read().meta.clone();
        let policy = Self::policy_slot(&mut meta, &consumer, &input.resource_arn)?
            .clone()
            .unwrap_or_else(|| "{}".into());
        Ok(GetResourcePolicyOutput { policy })
    }

    pub async fn delete_resource_policy(
        &self,
        scope: &Scope,
        input: DeleteResourcePolicyInput,
    ) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let (handle, consumer) = self.resolve_resource(scope, &input.resource_arn)?;
        let arn = input.resource_arn.clone();
        self.update_meta(&handle, |m| {
            match Self::policy_slot(m, &consumer, &arn)?.take() {
                Some(_) => Ok(()),
                None => Err(Error::ResourceNotFound(format!(
                    "No resource policy found for resource {arn}."
                ))),
            }
        })
    }

    // --- account settings ------------------------------------------------------------------

    fn account_settings(&self, account: &str) -> Result<AccountSettings> {
        let key = format!("{ACCOUNT_SETTINGS_KEY}/{account}");
        match self.inner.meta.get_setting(&key)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::InternalFailure(format!("account settings: {e}"))),
            None => Ok(AccountSettings::default()),
        }
    }

    fn commitment_enabled(&self, account: &str) -> Result<bool> {
        let s = self.account_settings(account)?;
        let t = now(&self.inner);
        Ok(s.commitment_enabled_at.is_some() && s.commitment_ends_at.is_none_or(|end| end > t))
    }

    fn settings_output(&self, s: &AccountSettings) -> AccountSettingsOutput {
        let t = now(&self.inner);
        let commitment = match (s.commitment_enabled_at, s.commitment_ends_at) {
            (None, _) => MinimumThroughputBillingCommitment {
                status: CommitmentStatus::Disabled,
                started_at: None,
                ended_at: None,
                earliest_allowed_end_at: None,
            },
            (Some(start), Some(end)) if end <= t => MinimumThroughputBillingCommitment {
                status: CommitmentStatus::Disabled,
                started_at: Some(start),
                ended_at: Some(end),
                earliest_allowed_end_at: None,
            },
            (Some(start), Some(end)) => MinimumThroughputBillingCommitment {
                status: CommitmentStatus::EnabledUntilEarliestAllowedEnd,
                started_at: Some(start),
                ended_at: Some(end),
                earliest_allowed_end_at: Some(start + COMMITMENT_MIN_MS),
            },
            (Some(start), None) => MinimumThroughputBillingCommitment {
                status: CommitmentStatus::Enabled,
                started_at: Some(start),
                ended_at: None,
                earliest_allowed_end_at: Some(start + COMMITMENT_MIN_MS),
            },
        };
        AccountSettingsOutput {
            minimum_throughput_billing_commitment: Some(commitment),
        }
    }

    pub fn describe_account_settings(&self, scope: &Scope) -> Result<AccountSettingsOutput> {
        let s = self.account_settings(&scope.account)?;
        Ok(self.settings_output(&s))
    }

    pub async fn update_account_settings(
        &self,
        scope: &Scope,
        input: UpdateAccountSettingsInput,
    ) -> Result<AccountSettingsOutput> {
        let _guard = self.inner.control.lock().await;
        let mut s = self.account_settings(&scope.account)?;
        let t = now(&self.inner);
        let active =
            s.commitment_enabled_at.is_some() && s.commitment_ends_at.is_none_or(|e| e > t);
        match input.minimum_throughput_billing_commitment {
            CommitmentStatus::Enabled => {
                if !active {
                    s.commitment_enabled_at = Some(t);
                }
                s.commitment_ends_at = None;
            }
            _ => {
                if active {
                    let start = s.commitment_enabled_at.unwrap_or(t);
                    // Disabling early schedules the end at the earliest allowed time.
                    s.commitment_ends_at = Some((start + COMMITMENT_MIN_MS).max(t));
                }
            }
        }
        let bytes = serde_json::to_vec(&s)
            .map_err(|e| Error::InternalFailure(format!("account settings: {e}")))?;
        self.inner
            .meta
            .put_setting(&format!("{ACCOUNT_SETTINGS_KEY}/{}", scope.account), &bytes)?;
        Ok(self.settings_output(&s))
    }
}
