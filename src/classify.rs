//! Who made a CloudTrail call: this module owns the mapping from one event to a
//! [`Channel`] (console, automation, AWS service, unknown) and a short client
//! family keyword (`terraform`, `aws-cli`, `boto3`, `console`, …). It is pure and
//! synchronous: no I/O, no logging, no allocation per event (a bounded per-thread
//! memo of the agents already matched allocates on a miss), and it never panics on
//! odd input (missing `userIdentity`, a `userAgent` that is not a string, keys
//! exported all-lowercase). The user-agent knowledge lives in one ordered table,
//! `RULES`; adding a tool is one line there. Invariant: `classify` always returns a
//! family that [`families`] lists, and the same event always gets the same answer.
//!
//! Precedence, first match wins:
//! 1. `sessionCredentialFromConsole` is `true` or `"true"` → console / `console`.
//! 2. `eventType` is `AwsConsoleSignIn` (any case, so also `AwsConsoleSignin`) or
//!    `AwsConsoleAction` → console / `console`.
//! 3. Console evidence beats service evidence: a console front-end as the agent
//!    (`console.amazonaws.com`, `console.ec2.amazonaws.com`, `signin.amazonaws.com`,
//!    `S3Console/0.4`, `[S3Console/0.4, aws-internal/3 …]`, `RDS Console, …`,
//!    `EC2ConsoleFrontend, …`, `AWSConsole`), or a console host as
//!    `userIdentity.invokedBy`, → console / `console`. When `invokedBy` names a real
//!    service but the agent is a console front-end (CloudFormation acting for a
//!    person who clicked in the console), we report the person's channel, console;
//!    the service detour is still visible in `invokedBy` itself.
//! 4. Service callers → aws-service: `userIdentity.type` is `AWSService`, or
//!    `userIdentity.invokedBy` is a non-empty string, or the agent is a bare
//!    `*.amazonaws.com` host, `AWS Internal` or `aws-internal/…`. The family is
//!    `cloudformation` when CloudFormation is the caller (so IaC run through
//!    CloudFormation stays visible), `aws-internal` for `AWS Internal`/`aws-internal/…`,
//!    otherwise `aws-service`.
//! 5. Automation agents from `RULES` (IaC before tools before the CLI before SDKs,
//!    so a Terraform agent that also names `aws-sdk-go` is `terraform`, and an
//!    `aws-cli` agent that also names `botocore` is `aws-cli`).
//! 6. Browser agents (`Mozilla…`) → console / `browser`.
//! 7. Anything else: an agent is present → unknown / `other`; no agent → unknown /
//!    `unknown`.
//!
//! Agents are matched on tokens, ASCII case-insensitively: a token starts at the
//! beginning of the agent or after a space, tab, `[`, `(`, `,`, `;` or quote, so
//! bracketed agents (`[aws-cli/1.18.136 …]`) and appended products
//! (`… amazon-ssm-agent/3.3`) match, while `HashiCorp-terraform-exec` does not count
//! as a token `terraform`.

use serde_json::Value;

use crate::decode::Lookup;

/// The broad channel through which a call reached AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A person in the AWS console or in a browser.
    Console,
    /// Scripts, SDKs, the CLI and infrastructure-as-code tools.
    Automation,
    /// An AWS service acting on its own or on a principal's behalf.
    AwsService,
    /// Not enough evidence either way.
    Unknown,
}

impl Channel {
    /// Every channel, in the order dashboards should list them.
    pub const ALL: [Channel; 4] = [
        Channel::Console,
        Channel::Automation,
        Channel::AwsService,
        Channel::Unknown,
    ];

    /// The keyword stored in the index: `console`, `automation`, `aws-service`,
    /// `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Console => "console",
            Channel::Automation => "automation",
            Channel::AwsService => "aws-service",
            Channel::Unknown => "unknown",
        }
    }
}

/// The channel and client family of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// Console, automation, AWS service or unknown.
    pub channel: Channel,
    /// Short lowercase keyword naming the client family; always one of [`families`].
    pub client: &'static str,
}

/// How a rule's pattern is compared with the user agent. All patterns are lowercase
/// ASCII and compared ASCII case-insensitively.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    /// Some token of the agent starts with the pattern.
    Token(&'static str),
    /// The whole agent (trimmed, outer `[...]` removed) equals the pattern.
    Exact(&'static str),
    /// The agent is a single host name ending with the pattern.
    HostSuffix(&'static str),
    /// The agent's leading product name (text before the first `,` or `/`) contains
    /// the pattern: `S3Console/0.4`, `RDS Console, aws-internal/3 …`.
    Lead(&'static str),
}

/// One line of the agent table.
#[derive(Debug, Clone, Copy)]
struct Rule {
    pattern: Pattern,
    channel: Channel,
    family: &'static str,
}

const fn tok(p: &'static str, channel: Channel, family: &'static str) -> Rule {
    Rule {
        pattern: Pattern::Token(p),
        channel,
        family,
    }
}
const fn exact(p: &'static str, channel: Channel, family: &'static str) -> Rule {
    Rule {
        pattern: Pattern::Exact(p),
        channel,
        family,
    }
}
const fn host(p: &'static str, channel: Channel, family: &'static str) -> Rule {
    Rule {
        pattern: Pattern::HostSuffix(p),
        channel,
        family,
    }
}
const fn lead(p: &'static str, channel: Channel, family: &'static str) -> Rule {
    Rule {
        pattern: Pattern::Lead(p),
        channel,
        family,
    }
}

use Channel::{Automation as AUTO, AwsService as SVC, Console as CON};

/// Family for agents that are present but match no rule.
const OTHER: &str = "other";
/// Family for events without a usable agent.
const UNKNOWN: &str = "unknown";
/// Families the precedence code refers to by name; each must occur in [`RULES`].
const CONSOLE: &str = "console";
const AWS_INTERNAL: &str = "aws-internal";
const CLOUDFORMATION: &str = "cloudformation";
const AWS_SERVICE: &str = "aws-service";

/// The user-agent table. Order is priority: the first rule that matches anywhere in
/// the agent wins, whatever the position of the match inside the string.
const RULES: &[Rule] = &[
    // Console front-ends. They beat service evidence (see the module docs).
    lead("console", CON, CONSOLE), // console.amazonaws.com, S3Console/, RDS Console, AWSConsole
    exact("signin.amazonaws.com", CON, CONSOLE),
    // AWS-internal callers and service principals as agents.
    exact("aws internal", SVC, AWS_INTERNAL),
    exact("&aws; internal", SVC, AWS_INTERNAL), // unexpanded entity in AWS docs
    exact("aws.internal", SVC, AWS_INTERNAL),
    tok("aws-internal/", SVC, AWS_INTERNAL),
    tok("awslambda-worker/", SVC, AWS_SERVICE), // Lambda's own worker writing logs
    exact("cloudformation.amazonaws.com", SVC, CLOUDFORMATION),
    host(".amazonaws.com", SVC, AWS_SERVICE),
    host(".amazonaws.com.cn", SVC, AWS_SERVICE),
    // Infrastructure as code: before CLI/SDK, whose tokens these agents also carry.
    tok("crossplane", AUTO, "crossplane"),
    tok("terraform", AUTO, "terraform"), // Terraform/1.5.0, terraform-provider-aws/5.0
    tok("pulumi", AUTO, "pulumi"),
    tok("aws-cdk", AUTO, "cdk"),
    tok("aws-sam-cli", AUTO, "sam"),
    tok("ansible", AUTO, "ansible"), // APN/1.0 Ansible/2.15 amazon.aws/…
    tok("serverless", AUTO, "serverless"),
    // Named tools built on an SDK: before the SDK they embed.
    tok("stratus-red-team", AUTO, "stratus-red-team"),
    tok("cloudcustodian", AUTO, "cloud-custodian"),
    tok("trufflehog", AUTO, "trufflehog"),
    tok("amazon-ssm-agent", AUTO, "ssm-agent"),
    // The CLI (its agent also names botocore).
    tok("aws-cli/", AUTO, "aws-cli"),
    // PowerShell (its agent also names aws-sdk-dotnet).
    tok("awspowershell", AUTO, "powershell"),
    tok("windowspowershell", AUTO, "powershell"),
    tok("powershellcore", AUTO, "powershell"),
    // SDKs.
    tok("boto", AUTO, "boto3"), // Boto3/, Botocore/, Boto/2.x
    tok("aws-sdk-python", AUTO, "boto3"),
    tok("aws-sdk-java", AUTO, "sdk-java"),
    tok("aws-sdk-kotlin", AUTO, "sdk-kotlin"),
    tok("aws-sdk-swift", AUTO, "sdk-swift"),
    tok("aws-sdk-go", AUTO, "sdk-go"), // also aws-sdk-go-v2
    tok("aws-sdk-nodejs", AUTO, "sdk-js"),
    tok("aws-sdk-js", AUTO, "sdk-js"),
    tok("aws-sdk-dotnet", AUTO, "sdk-dotnet"),
    tok("aws-sdk-ruby", AUTO, "sdk-ruby"),
    tok("aws-sdk-php", AUTO, "sdk-php"),
    tok("aws-sdk-rust", AUTO, "sdk-rust"),
    tok("rusoto", AUTO, "sdk-rust"),
    tok("aws-sdk-cpp", AUTO, "sdk-cpp"),
    // A person in a browser, after every SDK (browser SDK calls name both).
    tok("mozilla", CON, "browser"),
];

/// Every client family `classify` can return, each once, in table order, followed by
/// `other` and `unknown`. Meant for docs and dashboard value lists.
pub fn families() -> impl Iterator<Item = &'static str> {
    let all = || RULES.iter().map(|r| r.family).chain([OTHER, UNKNOWN]);
    all()
        .enumerate()
        .filter(move |&(i, f)| !all().take(i).any(|g| g == f))
        .map(|(_, f)| f)
}

/// The top-level fields [`classify`] reads, in both spellings it knows.
pub const TOP_LEVEL_READS: &[&str] = &[
    "sessionCredentialFromConsole",
    "sessioncredentialfromconsole",
    "eventType",
    "eventtype",
    "eventSource",
    "eventsource",
    "userAgent",
    "useragent",
    "userIdentity",
    "useridentity",
];

/// Classify one CloudTrail event (the top-level JSON object).
pub fn classify(event: &(impl Lookup + ?Sized)) -> Classification {
    const fn class(channel: Channel, client: &'static str) -> Classification {
        Classification { channel, client }
    }
    let console = class(Channel::Console, CONSOLE);

    // 1 and 2: the event says itself that it came from the console.
    if field(event, "sessionCredentialFromConsole", "sessioncredentialfromconsole").is_some_and(is_true) {
        return console;
    }
    if str_field(event, "eventType", "eventtype")
        .is_some_and(|t| t.eq_ignore_ascii_case("AwsConsoleSignIn") || t.eq_ignore_ascii_case("AwsConsoleAction"))
    {
        return console;
    }
    // Sign-in events (ConsoleLogin, CheckMfa, SwitchRole, …) are console work even when a
    // trimmed-down event has lost its eventType and agent.
    if str_field(event, "eventSource", "eventsource").is_some_and(|s| s.eq_ignore_ascii_case("signin.amazonaws.com")) {
        return console;
    }

    let agent_value = field(event, "userAgent", "useragent");
    let agent = agent_value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let hit = agent.and_then(match_agent_memo);
    let identity = field(event, "userIdentity", "useridentity").and_then(Value::as_object);
    let invoked_by = identity
        .and_then(|u| str_field(u, "invokedBy", "invokedby"))
        .map(str::trim)
        .filter(|s| !s.is_empty());

    let by_hit = invoked_by.and_then(match_agent_memo);

    // 3: a console front-end, as agent or as invoker, is a person in the console.
    if hit.is_some_and(|r| r.family == CONSOLE) || by_hit.is_some_and(|r| r.family == CONSOLE) {
        return console;
    }

    // 4: structural service evidence; agent-only service evidence comes from RULES.
    let service_type = identity
        .and_then(|u| str_field(u, "type", "type"))
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("AWSService"));
    if service_type || invoked_by.is_some() {
        let by_family = by_hit.map(|r| r.family);
        let agent_family = hit.map(|r| r.family);
        let is = |f: &str| by_family == Some(f) || agent_family == Some(f);
        let client = if is(CLOUDFORMATION) {
            CLOUDFORMATION
        } else if is(AWS_INTERNAL) {
            AWS_INTERNAL
        } else {
            AWS_SERVICE
        };
        return class(Channel::AwsService, client);
    }

    // 5 to 7.
    match hit {
        Some(rule) => class(rule.channel, rule.family),
        None if agent.is_some() || agent_value.is_some_and(is_odd_present) => class(Channel::Unknown, OTHER),
        None => class(Channel::Unknown, UNKNOWN),
    }
}

/// Looks a key up under its CloudTrail spelling, then under the all-lowercase
/// spelling some data-lake exports use.
fn field<'a, L: Lookup + ?Sized>(map: &'a L, key: &str, lower: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| map.get(lower))
}

fn str_field<'a, L: Lookup + ?Sized>(map: &'a L, key: &str, lower: &str) -> Option<&'a str> {
    field(map, key, lower).and_then(Value::as_str)
}

/// `true`, or a string that reads `true` in any case.
fn is_true(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// A non-string agent that still carries something (a number, a list, an object).
fn is_odd_present(v: &Value) -> bool {
    match v {
        Value::Null | Value::String(_) => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// Agents remembered per thread; the memo starts over when it is full.
const MEMO_AGENTS: usize = 4096;
/// Longer agents are matched every time.
const MEMO_AGENT_BYTES: usize = 512;

thread_local! {
    /// The rule index (None: no rule) of each agent matched lately: a trail
    /// repeats a few thousand agents millions of times.
    static AGENT_MEMO: std::cell::RefCell<std::collections::HashMap<Box<str>, Option<u8>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// [`match_agent`], remembered.
fn match_agent_memo(agent: &str) -> Option<&'static Rule> {
    if agent.len() > MEMO_AGENT_BYTES {
        return match_agent(agent);
    }
    let index = AGENT_MEMO.with_borrow_mut(|memo| {
        if let Some(&index) = memo.get(agent) {
            return index;
        }
        // FIRST_BYTE holds at most 128 rules: every index fits.
        let index = rule_index(agent).and_then(|i| u8::try_from(i).ok());
        if memo.len() >= MEMO_AGENTS {
            memo.clear();
        }
        memo.insert(agent.into(), index);
        index
    });
    index.and_then(|i| RULES.get(usize::from(i)))
}

/// The first rule in table order that matches `agent` (already trimmed, non-empty).
fn match_agent(agent: &str) -> Option<&'static Rule> {
    rule_index(agent).and_then(|i| RULES.get(i))
}

/// The index in [`RULES`] of [`match_agent`]'s rule.
fn rule_index(agent: &str) -> Option<usize> {
    let core = core(agent);
    // Whole-agent patterns are cheap and checked once each.
    let mut best = RULES
        .iter()
        .position(|r| whole_matches(r.pattern, core))
        .unwrap_or(RULES.len());
    // One pass over the token starts, trying only token rules that share the token's
    // first byte and would beat `best`, lowest index first.
    let bytes = agent.as_bytes();
    for start in token_starts(bytes) {
        let first = bytes[start].to_ascii_lowercase();
        let mut candidates = FIRST_BYTE.get(usize::from(first)).copied().unwrap_or(0) & below(best);
        while candidates != 0 {
            let i = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            let matched = match RULES[i].pattern {
                Pattern::Token(p) => starts_with_ci(&bytes[start..], p.as_bytes()),
                _ => false,
            };
            if matched {
                best = i;
                break;
            }
        }
        if best == 0 {
            break;
        }
    }
    (best < RULES.len()).then_some(best)
}

/// For each ASCII byte, a bit set of the [`RULES`] indices whose `Token` pattern
/// starts with that byte, so a token is compared only with rules that can match it.
const FIRST_BYTE: [u128; 128] = {
    assert!(RULES.len() <= 128, "FIRST_BYTE holds at most 128 rules");
    let mut table = [0u128; 128];
    let mut i = 0;
    while i < RULES.len() {
        if let Pattern::Token(p) = RULES[i].pattern {
            let b = p.as_bytes()[0];
            assert!(b.is_ascii() && !b.is_ascii_uppercase(), "patterns are lowercase ASCII");
            table[b as usize] |= 1 << i;
        }
        i += 1;
    }
    table
};

/// The bit set of rule indices below `n`.
fn below(n: usize) -> u128 {
    if n >= 128 { u128::MAX } else { (1u128 << n) - 1 }
}

/// The agent without surrounding blanks and one outer pair of brackets.
fn core(agent: &str) -> &str {
    let s = agent.trim();
    let s = s.strip_prefix('[').unwrap_or(s);
    let s = s.strip_suffix(']').unwrap_or(s);
    s.trim()
}

fn whole_matches(pattern: Pattern, core: &str) -> bool {
    let b = core.as_bytes();
    match pattern {
        Pattern::Token(_) => false,
        Pattern::Exact(p) => b.eq_ignore_ascii_case(p.as_bytes()),
        Pattern::HostSuffix(p) => {
            let p = p.as_bytes();
            b.len() > p.len()
                && !b.iter().any(|c| c.is_ascii_whitespace() || matches!(c, b'/' | b','))
                && b[b.len() - p.len()..].eq_ignore_ascii_case(p)
        }
        Pattern::Lead(p) => {
            let end = b.iter().position(|&c| c == b',' || c == b'/').unwrap_or(b.len());
            contains_ci(&b[..end], p.as_bytes())
        }
    }
}

/// Byte offsets where a token starts: offset 0 and every byte after a separator.
fn token_starts(b: &[u8]) -> impl Iterator<Item = usize> + '_ {
    (0..b.len()).filter(move |&i| i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'[' | b'(' | b',' | b';' | b'"' | b'\''))
}

fn starts_with_ci(hay: &[u8], lower_pat: &[u8]) -> bool {
    hay.len() >= lower_pat.len() && hay[..lower_pat.len()].eq_ignore_ascii_case(lower_pat)
}

fn contains_ci(hay: &[u8], lower_pat: &[u8]) -> bool {
    !lower_pat.is_empty() && hay.windows(lower_pat.len()).any(|w| w.eq_ignore_ascii_case(lower_pat))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;
    use serde_json::json;

    use Channel::{Automation, AwsService, Console, Unknown};

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("test event must be an object, got {other}"),
        }
    }

    /// An ordinary IAM-user API call carrying `agent`.
    fn api_call(agent: &str) -> Map<String, Value> {
        obj(json!({
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "userName": "alice"},
            "eventType": "AwsApiCall",
            "userAgent": agent,
        }))
    }

    /// Real user agents, verbatim from the public corpus (source in the comment),
    /// as seen on an ordinary IAM-user API call.
    #[rustfmt::skip]
    const REAL_AGENTS: &[(&str, Channel, &str)] = &[
        // invictus-ir: Terraform through stratus-red-team warm-up, sdk-go v1 and v2.
        ("APN/1.0 HashiCorp/1.0 Terraform/1.1.2 (+https://www.terraform.io) terraform-provider-aws/3.76.1 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go/1.44.157 (go1.19.3; linux; amd64) HashiCorp-terraform-exec/0.17.3", Automation, "terraform"),
        ("APN/1.0 HashiCorp/1.0 Terraform/1.1.2 (+https://www.terraform.io) terraform-provider-aws/3.76.1 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go/1.44.157 (go1.19.3; linux; amd64) stratus-red-team_11a6ef34-e130-4579-a1d3-79c915cee6ec HashiCorp-terraform-exec/0.17.3", Automation, "terraform"),
        ("[APN/1.0 HashiCorp/1.0 Terraform/1.1.2 (+https://www.terraform.io) terraform-provider-aws/3.76.1 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go/1.44.157 (go1.19.3; linux; amd64) HashiCorp-terraform-exec/0.17.3]", Automation, "terraform"),
        ("APN/1.0 HashiCorp/1.0 Terraform/1.1.2 (+https://www.terraform.io) terraform-provider-aws/4.67.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.18.0 os/linux lang/go/1.19.8 md/GOOS/linux md/GOARCH/amd64 api/iam/1.19.12 HashiCorp-terraform-exec/0.17.3", Automation, "terraform"),
        // panther: newer Terraform, and the old order with the SDK first.
        ("APN/1.0 HashiCorp/1.0 Terraform/1.9.8 (+https://www.terraform.io) terraform-provider-aws/5.100.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.36.3 ua/2.1 os/linux lang/go#1.23.10 md/GOOS#linux md/GOARCH#amd64 exec-env/AWS_ECS_FARGATE api/iam#1.42.0 m/i", Automation, "terraform"),
        ("aws-sdk-go/1.29.7 (go1.13.7; darwin; amd64) APN/1.0 HashiCorp/1.0 Terraform/0.12.24 (+https://www.terraform.io)", Automation, "terraform"),
        ("APN/1.0 HashiCorp/1.0 Terraform/1.1.2", Automation, "terraform"),
        // sekoia
        ("APN/1.0 HashiCorp/1.0 Terraform/1.4.7 (+https://www.terraform.io) terraform-provider-aws/4.59.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go/1.44.221 (go1.19.6; linux; amd64)", Automation, "terraform"),
        // panther: Pulumi also names aws-sdk-go-v2.
        ("APN/1.0 Pulumi/1.0 Pulumi-Aws/0.11+compatible (+https://pulumi.com) aws-sdk-go-v2/1.36.3 ua/2.1 os/linux lang/go#1.23.8 md/GOOS#linux md/GOARCH#amd64 api/iam#1.41.0 m/g", Automation, "pulumi"),
        // The CLI, v1 and v2, bare, bracketed, CloudShell, with botocore inside.
        ("aws-cli/1.18.87 Python/3.7.3 Linux/4.19.0-6-amd64 botocore/1.17.30", Automation, "aws-cli"),
        ("[aws-cli/1.18.136 Python/3.8.5 Darwin/19.5.0 botocore/1.17.59]", Automation, "aws-cli"),
        ("aws-cli/1.10.10 Python/2.7.9 Windows/7botocore/1.4.1", Automation, "aws-cli"),
        ("aws-cli/2.13.0", Automation, "aws-cli"),
        ("aws-cli/2.0.0 Python/3.8.5 Linux/5.4.0-48-generic botocore/2.0.0dev0", Automation, "aws-cli"),
        ("aws-cli/2.13.5 Python/3.11.4 Linux/4.14.255-314-253.539.amzn2.x86_64 exec-env/CloudShell exe/x86_64.amzn.2 prompt/off command/ec2.stop-instances", Automation, "aws-cli"),
        ("[aws-cli/2.17.60 md/awscrt#0.21.2 ua/2.0 os/macos#23.6.0 md/arch#x86_64 lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off md/command#s3api.copy-object]", Automation, "aws-cli"),
        ("aws-cli/2.17.32 md/awscrt#0.21.2 ua/2.0 os/linux#5.10.16.3-microsoft-standard-WSL2 md/arch#x86_64 lang/python#3.11.9 md/pyimpl#CPython exec-env/grimoire_a228e0aa-7f18-44ed-8df9-fcee3003a5d3 cfg/retry-mode#standard md/installer#exe md/distrib#ubuntu.24 md/prompt#off md/command#cloudtrail.delete-trail", Automation, "aws-cli"),
        ("aws-cli/2.27.0 md/awscrt#0.25.4 ua/2.1 os/macos#24.4.0 md/arch#arm64 lang/python#3.13.3 md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/prompt#off md/command#iam.attach-user-policy", Automation, "aws-cli"),
        // Boto3 / Botocore.
        ("[Boto3/1.26.165 Python/3.10.6 Linux/5.19.0-46-generic Botocore/1.29.165]", Automation, "boto3"),
        ("Boto3/1.35.50 md/Botocore#1.35.50 ua/2.0 os/linux#6.8.0-1016-aws md/arch#x86_64 lang/python#3.12.3 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.35.50", Automation, "boto3"),
        ("Boto3/1.26.2 Python/3.10.8 Linux/4.14.294-220.533.amzn2.x86_64 exec-env/AWS_ECS_FARGATE Botocore/1.29.2", Automation, "boto3"),
        ("Boto3/1.15.2 Python/3.8.2 Linux/5.6.3-arch1-1 Botocore/1.18.2", Automation, "boto3"),
        // Tools built on an SDK win over the SDK.
        ("CloudCustodian(net-change-encryption)/0.9.2 Python/3.8.3 Linux/4.14.165-102.205.amzn2.x86_64 exec-env/AWS_Lambda_python3.8 Botocore/1.15.49", Automation, "cloud-custodian"),
        ("aws-sdk-go/1.41.4 (go1.18.3; linux; amd64) amazon-ssm-agent/", Automation, "ssm-agent"),
        ("aws-sdk-go/1.55.5 (go1.23.8; windows; amd64) exec-env/EC2 amazon-ssm-agent/3.3.2471.0", Automation, "ssm-agent"),
        ("stratus-red-team_ea782787-a65d-4fc4-9fca-1c97869a9a25", Automation, "stratus-red-team"),
        ("[stratus-red-team_0362e208-cc47-4ba7-9c39-195518d6e937]", Automation, "stratus-red-team"),
        ("trufflehog/3.63.0", Automation, "trufflehog"),
        ("TruffleHog", Automation, "trufflehog"),
        // Plain SDKs.
        ("aws-sdk-go-v2/1.17.0 os/linux lang/go/1.18.10 md/GOOS/linux md/GOARCH/amd64 api/sts/1.16.19", Automation, "sdk-go"),
        ("aws-sdk-go-v2/1.32.3 os/linux lang/go#1.23.1 md/GOOS#linux md/GOARCH#amd64 exec-env/grimoire_095724e3-1fa0-4e3e-b68a-e8581d194380 api/sts#1.26.2", Automation, "sdk-go"),
        ("[aws-sdk-go/1.44.77 (go1.19; linux; arm64) S3Manager]", Automation, "sdk-go"),
        ("aws-sdk-go/1.40.21 (go1.17; linux; amd64) exec-env/AWS_Lambda_go1.x", Automation, "sdk-go"),
        ("[aws-sdk-go-v2/1.16.16 os/linux lang/go/1.19.5 md/GOOS/linux md/GOARCH/amd64 exec-env/AWS_ECS_EC2 api/s3/1.27.11]", Automation, "sdk-go"),
        ("aws-sdk-java/2.20.0", Automation, "sdk-java"),
        ("aws-sdk-java/1.12.0", Automation, "sdk-java"),
        ("aws-sdk-python/1.26.0", Automation, "boto3"),
        // Service principals and AWS-internal callers as agents.
        ("AWS Internal", AwsService, "aws-internal"),
        ("&AWS; Internal", AwsService, "aws-internal"),
        ("aws-internal/3 aws-sdk-java/1.11.1030 Linux/5.4.116-64.217.amzn2int.x86_64 OpenJDK_64-Bit_Server_VM/25.302-b08 java/1.8.0_302 vendor/Oracle_Corporation cfg/retry-mode/legacy", AwsService, "aws-internal"),
        ("aws-internal/3", AwsService, "aws-internal"),
        ("[AWSCloudTrail, aws-internal/3 aws-sdk-java/1.12.433 Linux/5.4.247-169.350.amzn2int.x86_64 OpenJDK_64-Bit_Server_VM/25.362-b10 java/1.8.0_362 vendor/Oracle_Corporation cfg/retry-mode/standard]", AwsService, "aws-internal"),
        ("awslambda-worker/1.0 rusoto/0.47.0 rust/1.55.0 linux", AwsService, "aws-service"),
        ("cloudformation.amazonaws.com", AwsService, "cloudformation"),
        ("lambda.amazonaws.com", AwsService, "aws-service"),
        ("secretsmanager.amazonaws.com", AwsService, "aws-service"),
        ("workmail.eu-west-1.amazonaws.com", AwsService, "aws-service"),
        ("internal.amazonaws.com", AwsService, "aws-service"),
        // Console front-ends, also bracketed and in front of aws-internal/.
        ("console.ec2.amazonaws.com", Console, "console"),
        ("console.amazonaws.com", Console, "console"),
        ("signin.amazonaws.com", Console, "console"),
        ("[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488 Linux/5.10.184-153.731.amzn2int.x86_64 OpenJDK_64-Bit_Server_VM/25.372-b08 java/1.8.0_372 vendor/Oracle_Corporation cfg/retry-mode/standard]", Console, "console"),
        ("[S3Console/0.4]", Console, "console"),
        ("RDS Console, aws-internal/3 aws-sdk-java/1.11.975 Linux/5.10.184-152.730.amzn2int.x86_64 OpenJDK_64-Bit_Server_VM/25.242-b08 java/1.8.0_242 vendor/Oracle_Corporation cfg/retry-mode/legacy", Console, "console"),
        ("EC2ConsoleFrontend, aws-internal/3 aws-sdk-java/1.11.848 Linux/4.9.217-0.1.ac.205.84.332.metal1.x86_64 OpenJDK_64-Bit_Server_VM/25.262-b10 java/1.8.0_262 vendor/Oracle_Corporation", Console, "console"),
        ("EC2ConsoleBackend, aws-sdk-java/Linux/x.xx.fleetxen Java_HotSpot(TM)_64-Bit_Server_VM/xx", Console, "console"),
        ("AWSConsole", Console, "console"),
        // Browsers.
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:102.0) Gecko/20100101 Firefox/102.0", Console, "browser"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/67.0.3396.99 Safari/537.36", Console, "browser"),
        ("[Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36]", Console, "browser"),
        ("Mozilla/5.0 (iPad; CPU OS 14_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.1.1 Mobile/15E148 Safari/604.1", Console, "browser"),
        ("Mozilla/2.0 (compatible; NEWT ActiveX; Win32)", Console, "browser"),
        ("Mozilla", Console, "browser"),
        // Present but unrecognised.
        ("Python-httplib2/0.8 (gzip)", Unknown, "other"),
        ("PostmanRuntime/7.28.0", Unknown, "other"),
        ("python-requests/2.28.0", Unknown, "other"),
        ("Coral/Netty4", Unknown, "other"),
        ("ec2-api-tools 1.6.12.2", Unknown, "other"),
        ("Datadog", Unknown, "other"),
        ("elasticfilesystem", Unknown, "other"),
        ("Jersey/${project.version}", Unknown, "other"),
        ("aws sdk", Unknown, "other"),
        ("Chrome Browser", Unknown, "other"),
        ("...", Unknown, "other"),
    ];

    /// Agents not in the corpus, modelled on each tool's published format. They pin
    /// down precedence between tokens (CDK over the JS SDK, Ansible over Boto3,
    /// PowerShell over the .NET SDK), not exact versions.
    #[rustfmt::skip]
    const SYNTHETIC_AGENTS: &[(&str, Channel, &str)] = &[
        ("aws-sdk-nodejs/2.1048.0 linux/v16.13.1 exec-env/AWS_ECS_FARGATE aws-cdk/2.50.0", Automation, "cdk"),
        ("aws-sdk-js/3.310.0 os/linux/5.10 lang/js md/nodejs/18.16.0 api/cloudformation/3.310.0 aws-cdk/2.80.0", Automation, "cdk"),
        ("Boto3/1.26.0 Python/3.10.0 Linux/5.15 Botocore/1.29.0 APN/1.0 Ansible/2.15.0 amazon.aws/6.0.0", Automation, "ansible"),
        ("Boto3/1.26.0 Python/3.10.0 Linux/5.15 Botocore/1.29.0 aws-sam-cli/1.70.0", Automation, "sam"),
        ("aws-sdk-nodejs/2.1300.0 darwin/v18.12.1 Serverless/3.27.0", Automation, "serverless"),
        ("aws-sdk-go-v2/1.11.0 (go1.16; linux; amd64) Crossplane", Automation, "crossplane"),
        ("aws-sdk-dotnet-coreclr/3.7.100 aws-sdk-dotnet-core/3.7.100 .NET_Core/6.0 OS/Microsoft_Windows_10 ClientAsync AWSPowerShell/4.1.200", Automation, "powershell"),
        ("AWSPowerShell/3.3.0.0 .NET_Runtime/4.0 .NET_Framework/4.0 OS/Microsoft_Windows_NT_10.0 WindowsPowerShell/5.0 ClientSync", Automation, "powershell"),
        ("aws-sdk-dotnet-45/3.3.100.0 aws-sdk-dotnet-core/3.3.100.0 .NET_Runtime/4.0 .NET_Framework/4.0 OS/Microsoft_Windows_NT_6.2 ClientAsync", Automation, "sdk-dotnet"),
        ("aws-sdk-nodejs/2.1048.0 linux/v14.18.1 exec-env/AWS_Lambda_nodejs14.x", Automation, "sdk-js"),
        ("aws-sdk-js/3.400.0 ua/2.0 os/linux#5.10 lang/js md/nodejs#18.17.1 api/s3#3.400.0", Automation, "sdk-js"),
        ("aws-sdk-ruby3/3.130.0 ruby/3.1.2 x86_64-linux aws-sdk-s3/1.117.0", Automation, "sdk-ruby"),
        ("aws-sdk-php/3.258.0 OS/Linux/5.10 lang/php/8.1.0 GuzzleHttp/7", Automation, "sdk-php"),
        ("aws-sdk-rust/0.55.0 os/linux lang/rust/1.68.0", Automation, "sdk-rust"),
        ("aws-sdk-cpp/1.9.300 Linux/5.10 x86_64 GCC/11.3.0", Automation, "sdk-cpp"),
        ("aws-sdk-kotlin/1.0.0 ua/2.0 api/s3#1.0.0 os/linux#5.10 lang/kotlin#1.9.0", Automation, "sdk-kotlin"),
        ("aws-sdk-swift/0.30.0 api/s3/0.30.0 os/macOS/14.0 lang/swift/5.9", Automation, "sdk-swift"),
        ("Boto/2.49.0 Python/2.7.18 Linux/4.14", Automation, "boto3"),
        ("ec2.amazonaws.com.cn", AwsService, "aws-service"),
        ("  BOTO3/1.0  ", Automation, "boto3"),
        ("Mozilla/5.0 (X11; Linux x86_64) aws-sdk-js/2.1000.0 callback", Automation, "sdk-js"),
        // Look-alikes that must not match.
        ("HashiCorp-terraform-exec/0.17.3", Unknown, "other"),
        ("my-aws-cli-wrapper/1.0", Unknown, "other"),
        ("example.com", Unknown, "other"),
        ("amazonaws.com", Unknown, "other"),
        // The console rule looks at the leading product name only...
        ("aws-sdk-go/1.0 console-tool/1.0", Automation, "sdk-go"),
        // ...so any product whose name contains "console" counts as a console front-end.
        ("console-tool/1.0 aws-sdk-go/1.0", Console, "console"),
    ];

    #[test]
    fn real_agents() {
        assert!(REAL_AGENTS.len() >= 30);
        for &(agent, channel, client) in REAL_AGENTS {
            let got = classify(&api_call(agent));
            assert_eq!(got, Classification { channel, client }, "agent {agent:?}");
        }
    }

    #[test]
    fn synthetic_agents() {
        for &(agent, channel, client) in SYNTHETIC_AGENTS {
            let got = classify(&api_call(agent));
            assert_eq!(got, Classification { channel, client }, "agent {agent:?}");
        }
    }

    /// Whole event shapes (trimmed from the corpus; the source is in the comment).
    #[test]
    fn event_shapes() {
        let cases: Vec<(&str, Value, Channel, &str)> = vec![
            // invictus-ir: Health dashboard call marked as console credentials, although
            // the agent is "AWS Internal" and invokedBy names a service.
            (
                "console credentials beat invokedBy",
                json!({
                "userIdentity": {"type": "IAMUser", "userName": "bert-jan", "invokedBy": "health.amazonaws.com"},
                "eventType": "AwsApiCall", "userAgent": "AWS Internal",
                "sessionCredentialFromConsole": "true"}),
                Console,
                "console",
            ),
            // panther: boolean form.
            (
                "sessionCredentialFromConsole bool",
                json!({
                "userIdentity": {"type": "AssumedRole"}, "eventType": "AwsApiCall",
                "userAgent": "aws-cli/2.13.0", "sessionCredentialFromConsole": true}),
                Console,
                "console",
            ),
            (
                "sessionCredentialFromConsole upper case",
                json!({
                "userAgent": "aws-cli/2.13.0", "sessionCredentialFromConsole": "TRUE"}),
                Console,
                "console",
            ),
            (
                "sessionCredentialFromConsole false",
                json!({
                "userAgent": "aws-cli/2.13.0", "sessionCredentialFromConsole": "false"}),
                Automation,
                "aws-cli",
            ),
            // sekoia: root from console, agent "aws.internal".
            (
                "console root with aws.internal agent",
                json!({
                "userIdentity": {"type": "Root"}, "eventType": "AwsApiCall",
                "userAgent": "aws.internal", "sourceIPAddress": "aws.internal",
                "sessionCredentialFromConsole": "true"}),
                Console,
                "console",
            ),
            // elastic: ConsoleLogin with a browser agent.
            (
                "ConsoleLogin",
                json!({
                "eventVersion": "1.05",
                "userIdentity": {"type": "IAMUser", "userName": "JohnDoe"},
                "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
                "userAgent": "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:24.0) Gecko/20100101 Firefox/24.0",
                "responseElements": {"ConsoleLogin": "Success"},
                "eventType": "AwsConsoleSignIn"}),
                Console,
                "console",
            ),
            // panther: misspelt event type, no agent.
            (
                "AwsConsoleSignin misspelt",
                json!({
                "userIdentity": {"type": "IAMUser"}, "eventName": "ConsoleLogin",
                "eventType": "AwsConsoleSignin"}),
                Console,
                "console",
            ),
            (
                "AwsConsoleAction",
                json!({
                "userIdentity": {"type": "AssumedRole"}, "eventType": "AwsConsoleAction",
                "userAgent": "Mozilla/5.0"}),
                Console,
                "console",
            ),
            // elastic: AWSService AssumeRole.
            (
                "AWSService type",
                json!({
                "userIdentity": {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
                "eventName": "AssumeRole", "userAgent": "ec2.amazonaws.com",
                "eventType": "AwsApiCall"}),
                AwsService,
                "aws-service",
            ),
            (
                "AWSService type without agent or invokedBy",
                json!({
                "userIdentity": {"type": "AWSService"}, "eventType": "AwsApiCall"}),
                AwsService,
                "aws-service",
            ),
            // invictus-ir: KMS Decrypt on a user's behalf.
            (
                "invokedBy AWS Internal",
                json!({
                "userIdentity": {"type": "IAMUser", "invokedBy": "AWS Internal"},
                "eventName": "Decrypt", "userAgent": "AWS Internal",
                "eventType": "AwsApiCall"}),
                AwsService,
                "aws-internal",
            ),
            // awsdocs: Secrets Manager rotating with a user's key.
            (
                "invokedBy secretsmanager",
                json!({
                "userIdentity": {"type": "IAMUser", "invokedBy": "secretsmanager.amazonaws.com"},
                "userAgent": "secretsmanager.amazonaws.com", "eventType": "AwsApiCall"}),
                AwsService,
                "aws-service",
            ),
            // cloud-custodian: CloudFormation creating resources for a stack.
            (
                "invokedBy cloudformation",
                json!({
                "userIdentity": {"type": "AssumedRole", "invokedBy": "cloudformation.amazonaws.com"},
                "userAgent": "cloudformation.amazonaws.com", "eventType": "AwsApiCall"}),
                AwsService,
                "cloudformation",
            ),
            // panther: invokedBy beats a browser agent.
            (
                "invokedBy cloudformation with browser agent",
                json!({
                "userIdentity": {"type": "AssumedRole", "invokedBy": "cloudformation.amazonaws.com"},
                "userAgent": "Mozilla/2.0 (compatible; NEWT ActiveX; Win32)", "eventType": "AwsApiCall"}),
                AwsService,
                "cloudformation",
            ),
            (
                "invokedBy beats an automation agent",
                json!({
                "userIdentity": {"type": "AssumedRole", "invokedBy": "autoscaling.amazonaws.com"},
                "userAgent": "aws-sdk-java/2.20.0"}),
                AwsService,
                "aws-service",
            ),
            // panther: a console agent beats invokedBy (see the module docs).
            (
                "console agent beats invokedBy",
                json!({
                "userIdentity": {"type": "AssumedRole", "invokedBy": "cloudformation.amazonaws.com"},
                "eventName": "CreateUser", "userAgent": "console.amazonaws.com",
                "eventType": "AwsApiCall"}),
                Console,
                "console",
            ),
            (
                "S3 console agent beats AWSService type",
                json!({
                "userIdentity": {"type": "AWSService", "invokedBy": "s3.amazonaws.com"},
                "userAgent": "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.11.666 Linux/4.9.184-0.1.ac.235.83.329.metal1.x86_64 OpenJDK_64-Bit_Server_VM/25.232-b09 java/1.8.0_232 vendor/Oracle_Corporation]"}),
                Console,
                "console",
            ),
            // panther: sign-in service as invoker is a console sign-in flow.
            (
                "invokedBy signin",
                json!({
                "userIdentity": {"type": "Root", "invokedBy": "signin.amazonaws.com"},
                "eventName": "CreateAccessKey", "userAgent": "signin.amazonaws.com",
                "eventType": "AwsApiCall"}),
                Console,
                "console",
            ),
            (
                "invokedBy signin with sdk agent",
                json!({
                "userIdentity": {"type": "IAMUser", "invokedBy": "signin.amazonaws.com"},
                "userAgent": "aws-sdk-go/1.32.7 (go1.14.6; linux; amd64) exec-env/AWS_Lambda_go1.x"}),
                Console,
                "console",
            ),
            // awsdocs: service event without userIdentity.
            (
                "service event, agent only",
                json!({
                "eventType": "AwsServiceEvent", "userAgent": "AWS Internal"}),
                AwsService,
                "aws-internal",
            ),
            (
                "empty invokedBy is absent",
                json!({
                "userIdentity": {"type": "IAMUser", "invokedBy": " "},
                "userAgent": "aws-cli/2.13.0"}),
                Automation,
                "aws-cli",
            ),
            (
                "non-string invokedBy is absent",
                json!({
                "userIdentity": {"type": "IAMUser", "invokedBy": 7},
                "userAgent": "Boto3/1.26.0"}),
                Automation,
                "boto3",
            ),
            // aws-cloudtrail-user-guide: Insight event, no identity, no agent.
            (
                "insight event",
                json!({
                "eventVersion": "1.07", "eventType": "AwsCloudTrailInsight",
                "eventCategory": "Insight", "insightDetails": {"state": "Start"}}),
                Unknown,
                "unknown",
            ),
            (
                "no agent",
                json!({
                "userIdentity": {"type": "IAMUser"}, "eventType": "AwsApiCall"}),
                Unknown,
                "unknown",
            ),
            ("null agent", json!({"userAgent": null}), Unknown, "unknown"),
            ("empty agent", json!({"userAgent": "   "}), Unknown, "unknown"),
            ("number agent", json!({"userAgent": 42}), Unknown, "other"),
            // streamalert: a list where a string belongs.
            ("list agent", json!({"userAgent": ["aws-cli/2.0.0"]}), Unknown, "other"),
            (
                "userIdentity not an object",
                json!({
                "userIdentity": "AWSService", "userAgent": "Boto3/1.26.0"}),
                Automation,
                "boto3",
            ),
            (
                "eventType not a string",
                json!({
                "eventType": ["AwsConsoleSignIn"], "userAgent": "Boto3/1.26.0"}),
                Automation,
                "boto3",
            ),
            ("empty event", json!({}), Unknown, "unknown"),
            // panther data-lake export with all-lowercase keys.
            (
                "lowercase keys",
                json!({
                "eventname": "GetRecords", "eventtype": "AwsApiCall",
                "useridentity": {"arn": "arn:aws:test_arn"}}),
                Unknown,
                "unknown",
            ),
            (
                "lowercase keys with values",
                json!({
                "eventtype": "AwsApiCall", "useragent": "aws-cli/2.13.0",
                "useridentity": {"type": "IAMUser", "invokedby": "lambda.amazonaws.com"}}),
                AwsService,
                "aws-service",
            ),
            (
                "lowercase console flag",
                json!({
                "sessioncredentialfromconsole": "true", "useragent": "aws-cli/2.13.0"}),
                Console,
                "console",
            ),
            // sekoia: Korean text and emoji elsewhere; multibyte agents must not panic.
            (
                "multibyte agent",
                json!({"userAgent": "연결 😀 [aws-cli/2.0 é"}),
                Automation,
                "aws-cli",
            ),
            ("multibyte only", json!({"userAgent": "😀😀"}), Unknown, "other"),
        ];
        // Twice: matched, then remembered.
        for round in 0..2 {
            for (name, event, channel, client) in &cases {
                let got = classify(&obj(event.clone()));
                let want = Classification {
                    channel: *channel,
                    client,
                };
                assert_eq!(got, want, "{name}, round {round}");
            }
        }
    }

    #[test]
    fn channel_strings() {
        let names: Vec<_> = Channel::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["console", "automation", "aws-service", "unknown"]);
    }

    #[test]
    fn rule_table_is_well_formed() {
        for r in RULES {
            let p = match r.pattern {
                Pattern::Token(p) | Pattern::Exact(p) | Pattern::HostSuffix(p) | Pattern::Lead(p) => p,
            };
            assert!(!p.is_empty(), "empty pattern for {}", r.family);
            assert_eq!(p, p.to_ascii_lowercase(), "patterns are lowercase: {p}");
            assert!(
                r.family
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "family is a lowercase keyword: {}",
                r.family
            );
            // Every rule must be reachable: its own pattern text is not shadowed by an
            // earlier rule (Lead/Exact/HostSuffix patterns are checked as agents too).
            let sample = match r.pattern {
                Pattern::HostSuffix(p) => format!("svc{p}"),
                Pattern::Token(p) | Pattern::Exact(p) | Pattern::Lead(p) => p.to_string(),
            };
            let hit = match_agent(&sample).map(|h| h.family);
            assert_eq!(hit, Some(r.family), "rule {p:?} is shadowed");
        }
        for name in [CONSOLE, AWS_INTERNAL, CLOUDFORMATION, AWS_SERVICE, "browser"] {
            assert!(RULES.iter().any(|r| r.family == name), "{name} missing from RULES");
        }
    }

    #[test]
    fn families_are_listed_once() {
        let fams: Vec<_> = families().collect();
        for (i, f) in fams.iter().enumerate() {
            assert!(!fams[..i].contains(f), "{f} listed twice");
        }
        for want in [
            "console",
            "aws-cli",
            "boto3",
            "terraform",
            "cloudformation",
            "cdk",
            "pulumi",
            "ansible",
            "serverless",
            "sdk-java",
            "sdk-go",
            "sdk-js",
            "sdk-dotnet",
            "sdk-ruby",
            "sdk-php",
            "sdk-rust",
            "sdk-cpp",
            "powershell",
            "browser",
            "aws-internal",
            "aws-service",
            "other",
            "unknown",
        ] {
            assert!(fams.contains(&want), "{want} missing from families()");
        }
        // Everything classify returns is listed.
        for &(agent, _, _) in REAL_AGENTS.iter().chain(SYNTHETIC_AGENTS) {
            let c = classify(&api_call(agent));
            assert!(fams.contains(&c.client), "{} not in families()", c.client);
        }
    }

    // ---- corpus sweep -----------------------------------------------------------

    /// Unwraps the containers the corpus uses and calls `f` on each CloudTrail event.
    fn for_each_event(v: &Value, f: &mut dyn FnMut(&Map<String, Value>)) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| for_each_event(i, f)),
            Value::Object(m) => {
                let parsed = |s: &Value| s.as_str().and_then(|s| serde_json::from_str::<Value>(s).ok());
                if let Some(records) = m.get("Records").filter(|r| r.is_array()) {
                    for_each_event(records, f);
                } else if let Some(d) = m.get("detail").filter(|d| looks_like_event(d)) {
                    for_each_event(d, f);
                } else if let Some(Value::Array(les)) = m.get("logEvents") {
                    for le in les {
                        if let Some(inner) = le.get("message").and_then(parsed) {
                            for_each_event(&inner, f);
                        }
                    }
                } else if let Some(inner) = m.get("CloudTrailEvent").and_then(parsed) {
                    for_each_event(&inner, f);
                } else if let Some(inner) = m.get("input").and_then(|i| i.get("message")).and_then(parsed) {
                    for_each_event(&inner, f);
                } else if let Some(d) = m.get("details").filter(|d| looks_like_event(d)) {
                    for_each_event(d, f);
                } else if let Some(d) = m.get("data").filter(|d| d.is_object() || d.is_array()) {
                    for_each_event(d, f);
                } else if looks_like_event(v) {
                    f(m);
                }
            }
            _ => {}
        }
    }

    fn looks_like_event(v: &Value) -> bool {
        v.as_object().is_some_and(|m| {
            m.keys().any(|k| {
                matches!(
                    k.to_ascii_lowercase().as_str(),
                    "eventname" | "eventsource" | "useridentity" | "useragent" | "eventtype" | "eventversion"
                )
            })
        })
    }

    /// Calls `f` on every JSON object anywhere inside `v`, events or not.
    fn for_each_object(v: &Value, f: &mut dyn FnMut(&Map<String, Value>)) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| for_each_object(i, f)),
            Value::Object(m) => {
                f(m);
                m.values().for_each(|i| for_each_object(i, f));
            }
            _ => {}
        }
    }

    fn corpus_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                corpus_files(&path, out);
            } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                let wanted = [".json", ".ndjson", ".jsonl", ".log", ".raw"]
                    .iter()
                    .any(|e| name.ends_with(e))
                    && !name.ends_with("_index.ndjson")
                    && !name.ends_with("-expected.json")
                    && !matches!(name, "STATS.json" | "TYPE_CONFLICTS.json" | "MANIFEST.json");
                if wanted {
                    out.push(path);
                }
            }
        }
    }

    #[test]
    fn corpus_never_panics() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cloudtrail-corpus");
        if !dir.is_dir() {
            println!("corpus not found, skipped");
            return;
        }
        let mut files = Vec::new();
        corpus_files(&dir, &mut files);
        files.sort();
        let mut counts = std::collections::BTreeMap::<(&str, &str), usize>::new();
        let (mut events, mut objects) = (0usize, 0usize);
        for path in &files {
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            let docs: Vec<Value> = match serde_json::from_str(&text) {
                Ok(v) => vec![v],
                Err(_) => text
                    .lines()
                    .filter_map(|l| serde_json::from_str(l.trim()).ok())
                    .collect(),
            };
            for doc in &docs {
                for_each_event(doc, &mut |e| {
                    let c = classify(e);
                    assert!(families().any(|f| f == c.client), "{} not in families()", c.client);
                    *counts.entry((c.channel.as_str(), c.client)).or_default() += 1;
                    events += 1;
                });
                // Robustness: every nested object, event or not, classifies without panic.
                for_each_object(doc, &mut |m| {
                    classify(m);
                    objects += 1;
                });
            }
        }
        println!("{} files, {events} events, {objects} objects classified", files.len());
        let mut rows: Vec<_> = counts.into_iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for ((channel, client), n) in rows {
            println!("{n:>6}  {channel:<12} {client}");
        }
        assert!(events > 0, "no CloudTrail event found under {}", dir.display());
    }
}
