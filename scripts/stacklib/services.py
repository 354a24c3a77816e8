"""Every service scripts/stack knows, its knobs and its aliases.

To add a service, append one entry to `all_services()` (a family class from
search.py, moto.py, sigv4.py, secure_es.py or secure_os.py, or a new family
module with a Service subclass, see base.py) and its aliases to ALIASES.
The order of the list is the order of `status`.
"""

from __future__ import annotations

from .base import Service
from .common import env, port, die
from .moto import Moto
from .s3fast import S3Fast
from .search import SearchService
from .secure_es import SecureElasticsearch, default_role_file
from .secure_os import SecureOpenSearch, default_roles_file
from .sigv4 import SigV4Proxy

# Versions. Latest integ-test zips on Maven Central (checked 2026-11/12):
# elasticsearch 8.19.21, opensearch 2.19.6 (2.19.7 exists only as jars),
# elasticsearch 9.5.3 (9.x zips have no pom and are not listed in
# maven-metadata.xml; 9.0-9.3 have no zip at all), 7.17.29, 1.3.20, 3.8.0.
# Try a new one with e.g. `ES9_VERSION=x.y.z scripts/stack start elasticsearch9`.
ES_MAVEN = "org.elasticsearch.distribution.integ-test-zip:elasticsearch"
OS_MAVEN = "org.opensearch.distribution.integ-test-zip:opensearch"

DEFAULT_SERVICES = ["elasticsearch", "opensearch"]

ALIASES = {
    "es": "elasticsearch", "es8": "elasticsearch", "elasticsearch8": "elasticsearch",
    "os": "opensearch", "opensearch2": "opensearch",
    "es9": "elasticsearch9",
    "es-faults": "elasticsearch-faults",
    "moto": "s3",
    "s3s": "s3-fast", "s3s-fs": "s3-fast",
    "es-secure": "elasticsearch-secure",
    "es7": "elasticsearch7",
    "os-secure": "opensearch-secure",
    "sigv4": "opensearch-sigv4", "os-sigv4": "opensearch-sigv4",
    "os1": "opensearch1",
    "os3": "opensearch3",
}


def es(name: str, **kw) -> SearchService:
    return SearchService(name, maven=ES_MAVEN, product="elasticsearch", env_prefix="ES", **kw)


def opensearch(name: str, **kw) -> SearchService:
    return SearchService(name, maven=OS_MAVEN, product="opensearch", env_prefix="OPENSEARCH", **kw)


def all_services() -> list[Service]:
    es_version = env("ES_VERSION", "8.19.21")
    moto_version = env("MOTO_VERSION", "5.2.5")  # the docker-compose.yml moto image uses the same tag
    opensearch_port = port("OPENSEARCH_PORT", 9201)
    es8 = dict(version=es_version, jdk_min=17, jdk_max=25, jdk_prefer="low", java_home=env("ES_JAVA_HOME"))
    return [
        es("elasticsearch", **es8, port=port("ES_PORT", 9200), transport_port=port("ES_TRANSPORT_PORT", 9300),
           url_var="ES_URL", summary="Elasticsearch 8.x, open"),
        # OpenSearch 2.x needs the SecurityManager, which JDK 24 removed.
        opensearch("opensearch", version=env("OPENSEARCH_VERSION", "2.19.6"), port=opensearch_port,
                   transport_port=port("OPENSEARCH_TRANSPORT_PORT", 9301), url_var="OPENSEARCH_URL",
                   jdk_min=11, jdk_max=23, java_home=env("OPENSEARCH_JAVA_HOME"), summary="OpenSearch 2.x, open"),
        es("elasticsearch9", version=env("ES9_VERSION", "9.5.3"), port=port("ES9_PORT", 9202),
           transport_port=port("ES9_TRANSPORT_PORT", 9302), url_var="ES9_URL", jdk_min=21, jdk_max=99,
           java_home=env("ES9_JAVA_HOME"), summary="Elasticsearch 9.x, open (opt-in)",
           hint="not every 9.x release has an integ-test-zip on Maven Central (9.0-9.3 do not, 9.5.3 does)"),
        Moto("s3", version=moto_version, port=port("S3_PORT", 9090), port_var="S3_PORT", url_var="S3_ENDPOINT",
             stack_user=False, summary="moto server: S3, SQS, ... in memory (opt-in)"),
        # s3s-fs 0.14.1 is the newest that builds with Rust 1.95 (0.15+ need 1.96; checked 2026-12).
        S3Fast("s3-fast", version=env("S3_FAST_VERSION", "0.14.1"), port=port("S3_FAST_PORT", 9091),
               url_var="S3_FAST_ENDPOINT", port_var="S3_FAST_PORT", stack_user=False,
               summary="s3s-fs: a fast S3 server (Rust) over a folder, for the benchmark (opt-in)"),
        # The same ES 8 as `elasticsearch`, own ports and data, small heap:
        # the fault tests SIGKILL and restart it; never point anything else at it.
        es("elasticsearch-faults", **es8, port=port("ES_FAULTS_PORT", 9203),
           transport_port=port("ES_FAULTS_TRANSPORT_PORT", 9303), url_var="ES_FAULTS_URL",
           heap=env("ES_FAULTS_HEAP", "512m"), summary="a second ES 8 node for the fault tests (opt-in)"),
        SecureElasticsearch("elasticsearch-secure", **es8, maven=ES_MAVEN, product="elasticsearch", env_prefix="ES",
                            port=port("ES_SECURE_PORT", 9204), transport_port=port("ES_SECURE_TRANSPORT_PORT", 9304),
                            url_var="ES_SECURE_URL", heap=env("ES_SECURE_HEAP", "512m"), role_file=default_role_file(),
                            summary="ES 8 with security: HTTPS, realms, API key, token (opt-in)"),
        # 7.17 needs the SecurityManager (gone in JDK 24).
        es("elasticsearch7", version=env("ES7_VERSION", "7.17.29"), port=port("ES7_PORT", 9207),
           transport_port=port("ES7_TRANSPORT_PORT", 9307), url_var="ES7_URL", jdk_min=11, jdk_max=21,
           java_home=env("ES7_JAVA_HOME"), heap=env("ES7_HEAP", "512m"), summary="Elasticsearch 7.17, open (opt-in)",
           hint="7.17.29 is the newest 7.17 integ-test-zip on Maven Central (checked 2026-12; 7.17.30 is not there)"),
        SecureOpenSearch("opensearch-secure", maven=OS_MAVEN, product="opensearch", env_prefix="OPENSEARCH",
                         version=env("OPENSEARCH_SECURE_VERSION", "2.19.4"), port=port("OPENSEARCH_SECURE_PORT", 9205),
                         transport_port=port("OPENSEARCH_SECURE_TRANSPORT_PORT", 9305),
                         url_var="OPENSEARCH_SECURE_URL", jdk_min=11, jdk_max=23,
                         java_home=env("OPENSEARCH_SECURE_JAVA_HOME", env("OPENSEARCH_JAVA_HOME")),
                         heap=env("OPENSEARCH_SECURE_HEAP", "512m"), roles_file=default_roles_file(),
                         summary="OpenSearch 2.19.4 with the security plugin (opt-in)"),
        SigV4Proxy("opensearch-sigv4", version="botocore", port=port("OPENSEARCH_SIGV4_PORT", 9206),
                   url_var="OPENSEARCH_SIGV4_URL", stack_user=False, upstream=f"http://127.0.0.1:{opensearch_port}",
                   moto_version=moto_version, summary="SigV4-checking proxy in front of opensearch (opt-in)"),
        opensearch("opensearch1", version=env("OPENSEARCH1_VERSION", "1.3.20"), port=port("OPENSEARCH1_PORT", 9208),
                   transport_port=port("OPENSEARCH1_TRANSPORT_PORT", 9308), url_var="OPENSEARCH1_URL",
                   jdk_min=11, jdk_max=17, java_home=env("OPENSEARCH1_JAVA_HOME"),
                   heap=env("OPENSEARCH1_HEAP", "512m"), summary="OpenSearch 1.3, open (opt-in)",
                   hint="1.3.20 is the newest 1.3 integ-test-zip on Maven Central (checked 2026-12; 1.3.21 is not there)"),
        # OpenSearch 3 needs Java 21+ (here the Temurin 25 under /usr/lib/jvm).
        opensearch("opensearch3", version=env("OPENSEARCH3_VERSION", "3.8.0"), port=port("OPENSEARCH3_PORT", 9210),
                   transport_port=port("OPENSEARCH3_TRANSPORT_PORT", 9310), url_var="OPENSEARCH3_URL",
                   jdk_min=21, jdk_max=99, java_home=env("OPENSEARCH3_JAVA_HOME"),
                   heap=env("OPENSEARCH3_HEAP", "512m"), summary="OpenSearch 3.x, open (opt-in)",
                   hint="3.8.0 is the newest 3.x integ-test-zip on Maven Central (checked 2026-12; 3.9.0 is published only as jars)"),
    ]


def canonical(name: str, known: list[str]) -> str:
    if name in known:
        return name
    if name in ALIASES:
        return ALIASES[name]
    die(f"unknown service '{name}' (known: {' '.join(known)})")
