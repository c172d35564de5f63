# The systemd host plus the PHP packages the Laravel test fixture needs, baked once so
# each scenario's prepare step only copies the app. FFmpeg and supervisor are NOT here:
# installing them is the collection's job, and the tests must see it do that.
ARG BASE
FROM ${BASE}
RUN DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      php-cli php-laravel-framework php-sqlite3
