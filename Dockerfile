# syntax=docker/dockerfile:1
#
# ctindex in a small image: the release binary on distroless/cc (glibc,
# libgcc, CA certificates, no shell), running as the non-root user 65532.
#
#   docker build -t ctindex .
#   docker run --rm ctindex --version
#   docker run --rm -e CTINDEX_URL=https://es.example.com:9200 -e CTINDEX_API_KEY \
#       -e AWS_REGION -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_SESSION_TOKEN \
#       ctindex sync s3://my-trail-bucket
#
# Kubernetes manifests that use it: deploy/kubernetes/ (README: "Run on Kubernetes").

ARG RUST_VERSION=1.94.1

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# The commit and date that `ctindex --version` prints: the build context has
# no .git (.dockerignore), so pass them: --build-arg CTINDEX_COMMIT=$(git rev-parse --short HEAD)
# --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct).
ARG CTINDEX_COMMIT=unknown
ARG SOURCE_DATE_EPOCH
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY mappings ./mappings
COPY dashboards ./dashboards
# build.rs reads the commit from a packaged crate's .cargo_vcs_info.json when there is no checkout.
RUN printf '{"git":{"sha1":"%s"}}\n' "${CTINDEX_COMMIT}" > .cargo_vcs_info.json
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ctindex \
    && install -D -m 0755 target/release/ctindex /out/ctindex

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ctindex /usr/local/bin/ctindex
# 65532 is distroless's "nonroot"; numeric, so runAsNonRoot can check it.
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/ctindex"]
CMD ["--help"]
