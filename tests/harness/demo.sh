#!/usr/bin/env bash
# make demo: deploy the eLMS workers into a throwaway Debian 12 container and encode a video.
# Expects the images (make images) and the collection link (make collection) to exist.
set -euo pipefail
cd "$(dirname "$0")/../.."

NAME=elms-demo
IMAGE=elms-test/debian12-php:latest
APP=/var/www/html
started=$(date +%s)
workdir=.build/demo
mkdir -p "$workdir"

step() { printf '\n== %s\n' "$*"; }

if docker inspect "$NAME" >/dev/null 2>&1; then
  step "Removing the previous $NAME container"
  docker rm -f "$NAME" >/dev/null
fi

step "Starting $NAME (Debian 12, systemd as PID 1)"
docker run -d --name "$NAME" --network host --cgroupns host \
  -v /sys/fs/cgroup:/sys/fs/cgroup:ro --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
  --stop-signal SIGRTMIN+3 "$IMAGE" >/dev/null
for _ in $(seq 1 30); do
  state=$(docker exec "$NAME" systemctl is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  sleep 1
done

cat > "$workdir/inventory.ini" <<INVENTORY
[elms]
$NAME ansible_connection=community.docker.docker ansible_become=false ansible_python_interpreter=/usr/bin/python3
INVENTORY

step "Installing the sample Laravel app (the test fixture) into $NAME"
ansible-playbook -i "$workdir/inventory.ini" tests/fixtures/laravel_app/deploy.yml

step "Running the collection's site playbook"
ansible-playbook -i "$workdir/inventory.ini" playbooks/site.yml

job="demo-$(date +%H%M%S)"
step "Dispatching a sample encode ($job) through the app"
docker exec "$NAME" sh -c "cd $APP && runuser -u www-data -- php artisan elms:dispatch-encode $job --duration=6 --size=640x360"
out="$APP/storage/app/hls/$job"
for _ in $(seq 1 120); do
  docker exec "$NAME" test -f "$out/done.json" && break
  sleep 1
done
docker exec "$NAME" test -f "$out/done.json" || {
  echo "The encode did not finish within 120 s. Worker log:" >&2
  docker exec "$NAME" tail -n 30 "$APP/storage/logs/worker-video.log" >&2
  exit 1
}

step "supervisorctl status"
docker exec "$NAME" supervisorctl -c /etc/supervisor/supervisord.conf status

step "HLS output in $out"
docker exec "$NAME" sh -c "cd $out && ls -lR && echo && echo '--- master.m3u8' && cat master.m3u8"

step "Done in $(( $(date +%s) - started )) s"
echo "The container $NAME is still running. Look around: docker exec -it $NAME bash"
echo "Remove it with: make demo-clean   (or: docker rm -f $NAME)"
