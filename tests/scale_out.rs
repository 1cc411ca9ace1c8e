//! Scaling out on the Redis deployments Feast names: many hosts in one
//! consumer group against a Redis Cluster (with slots moving under them),
//! and a Sentinel failover during ingestion. The outcome a user cares
//! about is the same every time: exactly the bytes one host leaves on one
//! server, every entity's newest event, nothing committed unwritten.

mod support;

use std::path::Path;
use std::time::Duration;

use fvhost::local::{RedisSentinelSet, SENTINEL_MASTER};
use redis::Commands;
use support::*;

const VIEW: &str = "driver_hourly_stats";
const BASE: i64 = 1_767_225_600;
const TIMEOUT: Duration = Duration::from_secs(90);

type Message = (String, Vec<u8>);

/// Events of `drivers`, `rounds` each, 30 s apart, each driver's rounds
/// sent out of order (1, 0, 3, 2, ...); and each driver's newest second.
fn events(
    drivers: std::ops::Range<i64>,
    rounds: i64,
    start: i64,
) -> (Vec<Message>, Vec<(i64, i64)>) {
    let mut messages = Vec::new();
    for pair in (0..rounds).step_by(2) {
        for round in [pair + 1, pair].into_iter().filter(|r| *r < rounds) {
            for driver in drivers.clone() {
                let seconds = start + round * 30;
                let rate = (driver * 7 + round) as f64 / 1000.0;
                messages.push((
                    driver.to_string(),
                    driver_event(driver, seconds, rate, 1.0 - rate),
                ));
            }
        }
    }
    let newest = drivers.map(|d| (d, start + (rounds - 1) * 30)).collect();
    (messages, newest)
}

/// Points the repo's feature_store.yaml at another online store.
fn use_online_store(repo: &Path, online_store: &str) {
    let path = repo.join("feature_store.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let head = text.split("online_store:").next().unwrap();
    std::fs::write(
        &path,
        format!("{head}online_store:\n{online_store}entity_key_serialization_version: 3\n"),
    )
    .unwrap();
}

/// Waits until `connection` shows each driver's newest event written;
/// fails with the hosts' logs when it does not.
fn wait_for_newest<C: redis::ConnectionLike>(
    connection: &mut C,
    project: &str,
    newest: &[(i64, i64)],
    hosts: &[&HostProcess],
) {
    let started = std::time::Instant::now();
    let mut missing = newest.len();
    while started.elapsed() < TIMEOUT {
        missing = newest
            .iter()
            .filter(|(driver, seconds)| {
                let stored: Option<Vec<u8>> = connection
                    .hget(driver_key(*driver, project), format!("_ts:{VIEW}"))
                    .unwrap_or(None);
                stored != Some(timestamp_value(*seconds))
            })
            .count();
        if missing == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs: Vec<String> = hosts.iter().map(|h| h.log()).collect();
    panic!(
        "{missing} drivers lack their newest event after {TIMEOUT:?}; host logs:\n{}",
        logs.join("\n----\n")
    );
}

/// Produces `all` in 8 waves: 3 paced 100 ms apart, then `failure` (a
/// master killed with writes in flight), then the rest at once.
fn produce_around(
    rt: &tokio::runtime::Runtime,
    broker: &LocalBroker,
    all: &[Message],
    failure: impl FnOnce(),
) {
    let waves: Vec<&[Message]> = all.chunks(all.len() / 8 + 1).collect();
    let (before, after) = waves.split_at(3);
    for wave in before {
        rt.block_on(broker.produce("drivers", wave)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    failure();
    for wave in after {
        rt.block_on(broker.produce("drivers", wave)).unwrap();
    }
}

/// One host on one redis-server over `rounds` of events: the bytes every
/// scaled-out run must leave.
fn single_host_bytes(
    repo: &Path,
    project: &str,
    rounds: &[&[Message]],
    newest: &[(i64, i64)],
) -> RedisDump {
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("drivers", 6).unwrap();
    let redis = RedisServer::start().unwrap();
    let rt = runtime();
    for round in rounds {
        rt.block_on(broker.produce("drivers", round)).unwrap();
    }
    let host = HostProcess::start(repo, &broker, &redis);
    wait_for_newest(&mut redis_connection(&redis), project, newest, &[&host]);
    let exit = host.stop();
    assert!(exit.success, "stderr:\n{}", exit.stderr);
    redis_dump(&redis)
}

#[test]
fn three_hosts_on_a_cluster_one_killed_one_added_while_slots_move_leave_a_single_hosts_bytes() {
    let repo = TestRepo::new(
        "scale_cluster",
        &Definitions::new()
            .driver_stats(VIEW, "drivers", "Float32")
            .dead_letter("{type: redis_stream}")
            .yaml(),
    );
    let (mut first, first_newest) = events(1..301, 4, BASE);
    first.push(("bad".into(), b"not json".to_vec()));
    let (second, newest) = events(1..601, 6, BASE + 600);
    let expected = single_host_bytes(repo.path(), &repo.project, &[&first, &second], &newest);
    assert_eq!(expected.len(), 600);

    let cluster = RedisCluster::start(3, 0).unwrap();
    use_online_store(
        repo.path(),
        &format!(
            "  type: redis\n  redis_type: redis_cluster\n  connection_string: \"{}\"\n",
            cluster.connection_string()
        ),
    );
    let seeds: Vec<String> = cluster
        .connection_string()
        .split(',')
        .map(|node| format!("redis://{node}"))
        .collect();
    let mut on_cluster = redis::cluster::ClusterClient::new(seeds)
        .unwrap()
        .get_connection()
        .unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("drivers", 6).unwrap();
    let rt = runtime();
    let hosts: Vec<HostProcess> = (0..3)
        .map(|_| HostProcess::start_on_repo_store(repo.path(), &broker, &[]))
        .collect();
    rt.block_on(broker.produce("drivers", &first)).unwrap();
    let all: Vec<&HostProcess> = hosts.iter().collect();
    wait_for_newest(&mut on_cluster, &repo.project, &first_newest, &all);

    let mut hosts = hosts.into_iter();
    let killed = hosts.next().unwrap().crash();
    assert!(!killed.success, "SIGKILL: no draining, no final commit");
    let added = HostProcess::start_on_repo_store(repo.path(), &broker, &[]);
    // Slots move from one master to another while the second round is
    // written in waves: writes to moving slots get MOVED, ASK or TRYAGAIN.
    let masters = cluster.master_ports();
    std::thread::scope(|scope| {
        let reshard = scope.spawn(|| cluster.reshard(masters[0], masters[1], 2000));
        for wave in second.chunks(second.len() / 6 + 1) {
            rt.block_on(broker.produce("drivers", wave)).unwrap();
            std::thread::sleep(Duration::from_millis(150));
        }
        reshard.join().unwrap().unwrap();
    });
    let remaining: Vec<HostProcess> = hosts.chain([added]).collect();
    let all: Vec<&HostProcess> = remaining.iter().collect();
    wait_for_newest(&mut on_cluster, &repo.project, &newest, &all);
    for host in remaining {
        let exit = host.stop();
        assert!(exit.success, "stderr:\n{}", exit.stderr);
    }

    assert_eq!(
        cluster_dump(&cluster),
        expected,
        "hosts that came and went, on a cluster whose slots moved, leave one host's bytes"
    );
    // Dead letters are at least once: a host killed before its commit,
    // or a rebalance, hands the batch with the bad event to another member,
    // which dead-letters it again. Every entry is that one event.
    let letters: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(format!("fvhost:{}:dead_letter:{VIEW}", repo.project))
        .arg("-")
        .arg("+")
        .query(&mut on_cluster)
        .unwrap();
    assert!(
        !letters.is_empty(),
        "the bad event, dead-lettered on the cluster"
    );
    for (id, fields) in &letters {
        assert!(
            fields.iter().any(|f| f.as_slice() == b"not json"),
            "dead letter {id} is the bad event"
        );
    }
}

#[test]
fn a_sentinel_failover_mid_stream_loses_no_committed_write_when_writes_wait_for_a_replica() {
    let repo = TestRepo::new(
        "scale_sentinel",
        &Definitions::new()
            .driver_stats(VIEW, "drivers", "Float32")
            .yaml(),
    );
    let (all, newest) = events(1..401, 8, BASE);
    let expected = single_host_bytes(repo.path(), &repo.project, &[&all], &newest);

    let mut sentinels = RedisSentinelSet::start(2).unwrap();
    use_online_store(
        repo.path(),
        &format!(
            "  type: redis\n  redis_type: redis_sentinel\n  sentinel_master: {SENTINEL_MASTER}\n  connection_string: \"{}\"\n",
            sentinels.connection_string()
        ),
    );
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("drivers", 6).unwrap();
    let rt = runtime();
    let host =
        HostProcess::start_on_repo_store(repo.path(), &broker, &["--wait-for-replicas", "1"]);
    // The master dies with writes in flight; a replica takes over.
    let mut old = 0;
    produce_around(&rt, &broker, &all, || {
        old = sentinels.kill_master().unwrap()
    });
    let new = sentinels
        .wait_for_new_master(old, Duration::from_secs(30))
        .unwrap();
    let mut on_master = redis::Client::open(format!("redis://127.0.0.1:{new}/0"))
        .unwrap()
        .get_connection()
        .unwrap();
    wait_for_newest(&mut on_master, &repo.project, &newest, &[&host]);
    let exit = host.stop();
    assert!(exit.success, "stderr:\n{}", exit.stderr);
    assert!(
        exit.stderr.contains("nothing committed, retrying"),
        "the host wrote to the dead master and retried: the failover happened under ingestion\n{}",
        exit.stderr
    );
    assert_eq!(
        redis_dump_nodes(&[new]),
        expected,
        "after the failover the new master holds exactly one host's bytes"
    );
}

#[test]
fn two_hosts_on_a_real_kafka_protocol_broker_leave_a_single_hosts_bytes() {
    if fvhost::local::tansu_binary().is_none() {
        eprintln!(
            "SKIPPED: tansu (a Kafka-compatible broker) is not installed; scripts/setup.sh installs it"
        );
        return;
    }
    let repo = TestRepo::new(
        "scale_tansu",
        &Definitions::new()
            .driver_stats(VIEW, "drivers", "Float32")
            .yaml(),
    );
    let (first, first_newest) = events(1..501, 4, BASE);
    let (second, newest) = events(1..1001, 4, BASE + 600);
    let expected = single_host_bytes(repo.path(), &repo.project, &[&first, &second], &newest);

    let broker = LocalBroker::start_tansu().unwrap();
    broker.create_topic("drivers", 6).unwrap();
    let redis = RedisServer::start().unwrap();
    let rt = runtime();
    let hosts: Vec<HostProcess> = (0..2)
        .map(|_| HostProcess::start(repo.path(), &broker, &redis))
        .collect();
    rt.block_on(broker.produce("drivers", &first)).unwrap();
    let all: Vec<&HostProcess> = hosts.iter().collect();
    wait_for_newest(
        &mut redis_connection(&redis),
        &repo.project,
        &first_newest,
        &all,
    );
    // One host leaves the group cleanly; the other takes its partitions
    // from the offsets it committed.
    let mut hosts = hosts.into_iter();
    let left = hosts.next().unwrap().stop();
    assert!(left.success, "stderr:\n{}", left.stderr);
    let remaining = hosts.next().unwrap();
    rt.block_on(broker.produce("drivers", &second)).unwrap();
    wait_for_newest(
        &mut redis_connection(&redis),
        &repo.project,
        &newest,
        &[&remaining],
    );
    let exit = remaining.stop();
    assert!(exit.success, "stderr:\n{}", exit.stderr);
    assert_eq!(
        redis_dump(&redis),
        expected,
        "a real broker, one host's bytes"
    );
}

#[test]
fn a_cluster_master_killed_mid_stream_fails_over_and_loses_no_committed_write() {
    let repo = TestRepo::new(
        "scale_cluster_failover",
        &Definitions::new()
            .driver_stats(VIEW, "drivers", "Float32")
            .yaml(),
    );
    let (all, newest) = events(1..401, 8, BASE);
    let expected = single_host_bytes(repo.path(), &repo.project, &[&all], &newest);

    let mut cluster = RedisCluster::start(3, 1).unwrap();
    use_online_store(
        repo.path(),
        &format!(
            "  type: redis\n  redis_type: redis_cluster\n  connection_string: \"{}\"\n",
            cluster.connection_string()
        ),
    );
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("drivers", 6).unwrap();
    let rt = runtime();
    let host =
        HostProcess::start_on_repo_store(repo.path(), &broker, &["--wait-for-replicas", "1"]);
    // A master dies with writes in flight; its replica takes its slots.
    // Writes wait for a replica, so they stall until the dead node comes
    // back as the new master's replica.
    let victim = cluster.master_ports()[0];
    produce_around(&rt, &broker, &all, || cluster.kill_node(victim).unwrap());
    cluster
        .wait_for_failover(victim, Duration::from_secs(30))
        .unwrap();
    cluster.restart_node(victim).unwrap();
    let seeds: Vec<String> = cluster
        .master_ports()
        .iter()
        .map(|port| format!("redis://127.0.0.1:{port}"))
        .collect();
    let mut on_cluster = redis::cluster::ClusterClient::new(seeds)
        .unwrap()
        .get_connection()
        .unwrap();
    wait_for_newest(&mut on_cluster, &repo.project, &newest, &[&host]);
    // The cluster client may ride the failover out inside one write (it
    // re-sends for up to 15 s) or the write may fail and be retried: either
    // way, what matters is the bytes.
    let exit = host.stop();
    assert!(exit.success, "stderr:\n{}", exit.stderr);
    assert_eq!(
        cluster_dump(&cluster),
        expected,
        "after the failover the cluster holds exactly one host's bytes"
    );
}
