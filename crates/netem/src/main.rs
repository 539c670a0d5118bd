//! `decsweep-netem`: delays and drops one interface's packets in the current network namespace,
//! as `tc qdisc add dev IFACE root netem delay D J loss L` would on both directions, for kernels
//! built without sch_netem (this project's CI machine is one).
//!
//! iptables rules send the interface's incoming and outgoing IPv4 packets to an NFQUEUE; this
//! process holds each one and gives the kernel its verdict when its fate (see the library) says:
//! accept after the drawn delay, or drop. The packets themselves never leave the kernel (the
//! queue copies metadata only), so TCP above sees a real slow, lossy link: retransmissions,
//! reordering and all. Run it inside the namespace (`ip netns exec NS decsweep-netem ...`); it
//! prints one `impairing ...` line on stdout once the rules are in place, and on SIGTERM or
//! SIGINT removes them, releases what it holds and prints its counts.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io::{ErrorKind, Write};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use decsweep_netem::{parse_duration, parse_loss, Fates, Impairment};
use nfq::{Message, Queue, Verdict};

#[derive(Parser)]
#[command(version, about, long_about = None, after_help = "Needs root (CAP_NET_ADMIN) and Debian's `iptables`. \
Example, 200 ms ± 50 ms and 5% loss each way on eth0 of namespace hostA:\n  \
ip netns exec hostA decsweep-netem --interface eth0 --delay 200ms --jitter 50ms --loss 5%")]
struct Args {
    /// The interface whose packets are impaired.
    #[arg(long)]
    interface: String,
    /// Added to every packet that is not dropped: 200ms, 1.5s, 0.
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    delay: Duration,
    /// Each packet's delay is drawn uniformly from delay ± jitter.
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    jitter: Duration,
    /// Share of packets dropped: 5% or 0.05.
    #[arg(long, value_parser = parse_loss, default_value = "0")]
    loss: f64,
    /// Which of the interface's packets: received, sent, or both.
    #[arg(long, value_enum, default_value_t = Direction::Both)]
    direction: Direction,
    /// The NFQUEUE number; one per process within a namespace.
    #[arg(long, default_value_t = 0)]
    queue: u16,
    /// Seed of the packet fates, so a run can be repeated.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Direction {
    Ingress,
    Egress,
    Both,
}

/// A packet held until `due`; the heap pops the earliest first (then the first queued).
struct Held {
    due: Instant,
    seq: u64,
    msg: Message,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// The iptables rules that send the interface's packets to the queue.
fn rules(args: &Args) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let queue = args.queue.to_string();
    let mut rule = |chain: &str, flag: &str| {
        let words = [chain, flag, &args.interface, "-j", "NFQUEUE", "--queue-num", &queue];
        out.push(words.iter().map(|w| w.to_string()).collect());
    };
    if args.direction != Direction::Egress {
        rule("INPUT", "-i");
    }
    if args.direction != Direction::Ingress {
        rule("OUTPUT", "-o");
    }
    out
}

fn iptables(action: &str, rule: &[String]) -> Result<()> {
    let out = Command::new("iptables").arg("-w").arg(action).args(rule).output().context(
        "cannot run `iptables`: install Debian's iptables package (decsweep-netem queues packets through it)",
    )?;
    if !out.status.success() {
        bail!("`iptables {action} {}` failed: {}", rule.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let impairment = Impairment::new(args.delay, args.jitter, args.loss)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("installing signal handlers")?;
    }

    // Bind before the rules exist: a queued packet with no listener would be dropped.
    let mut queue = Queue::open().context("opening a netfilter netlink socket (needs CAP_NET_ADMIN)")?;
    queue.bind(args.queue).with_context(|| format!("binding NFQUEUE {} (is another process on it?)", args.queue))?;
    // Verdicts need only the packet id: copy no payload, so a held packet costs a few bytes.
    queue.set_copy_range(args.queue, 0)?;
    queue.set_queue_max_len(args.queue, 1 << 16)?;
    queue.set_nonblocking(true);
    let rules = rules(&args);
    for (i, rule) in rules.iter().enumerate() {
        if let Err(e) = iptables("-I", rule) {
            for added in &rules[..i] {
                let _ = iptables("-D", added);
            }
            return Err(e);
        }
    }
    println!(
        "decsweep-netem: impairing {} (delay {:?} ± {:?}, loss {}%) on NFQUEUE {}",
        args.interface,
        impairment.delay,
        impairment.jitter,
        impairment.loss * 100.0,
        args.queue
    );
    std::io::stdout().flush()?;

    let result = relay(&mut queue, Fates::new(impairment, args.seed), &stop);
    // Remove the rules first so nothing new is queued, then let go of what is held.
    for rule in &rules {
        if let Err(e) = iptables("-D", rule) {
            eprintln!("decsweep-netem: {e:#}");
        }
    }
    let (held, passed, dropped) = result?;
    let released = held.len();
    for mut h in held.into_vec() {
        h.msg.set_verdict(Verdict::Accept);
        let _ = queue.verdict(h.msg);
    }
    println!("decsweep-netem: passed {} packets, dropped {dropped}", passed + released as u64);
    Ok(())
}

/// Holds and releases packets until `stop`; returns what is still held and the counts.
fn relay(queue: &mut Queue, mut fates: Fates, stop: &AtomicBool) -> Result<(BinaryHeap<Held>, u64, u64)> {
    let mut held = BinaryHeap::new();
    let (mut seq, mut passed, mut dropped) = (0u64, 0u64, 0u64);
    while !stop.load(AtomicOrdering::Relaxed) {
        loop {
            match queue.recv() {
                Ok(mut msg) => match fates.draw() {
                    None => {
                        msg.set_verdict(Verdict::Drop);
                        queue.verdict(msg).context("dropping a packet")?;
                        dropped += 1;
                    }
                    Some(delay) => {
                        seq += 1;
                        held.push(Held { due: Instant::now() + delay, seq, msg });
                    }
                },
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => break,
                Err(e) => return Err(e).context("receiving from the queue"),
            }
        }
        let now = Instant::now();
        while held.peek().is_some_and(|h| h.due <= now) {
            let mut h = held.pop().expect("peeked");
            h.msg.set_verdict(Verdict::Accept);
            queue.verdict(h.msg).context("releasing a packet")?;
            passed += 1;
        }
        // The socket is polled: nothing here can wait on both it and the next due time, and a
        // millisecond is well below the delays this is for.
        let next = held.peek().map_or(Duration::from_millis(1), |h| h.due.saturating_duration_since(now));
        std::thread::sleep(next.min(Duration::from_millis(1)));
    }
    Ok((held, passed, dropped))
}
