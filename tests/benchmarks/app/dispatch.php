<?php
/*
 * Benchmark helper, run as the app's user in the app directory (bench.py copies it into
 * a throwaway bench container):
 *   php dispatch.php calibrate MS         prints how many rounds of BenchFixedWork take MS ms of CPU
 *   php dispatch.php dispatch MARKER ROUNDS   queues BenchFixedWork on the default queue
 */
use App\Jobs\BenchFixedWork;

// Also registers the app's autoloader, which finds BenchFixedWork in app/Jobs/.
$app = require getcwd().'/bootstrap/app.php';
$command = $argv[1] ?? '';

if ($command === 'calibrate') {
    // CPU time, not wall time: the count stays right when other processes share the CPUs.
    $target = ((int) $argv[2]) / 1000;
    $rounds = 0;
    $start = BenchFixedWork::cpuSeconds();
    while (BenchFixedWork::cpuSeconds() - $start < $target) {
        BenchFixedWork::work(2000);
        $rounds += 2000;
    }
    echo $rounds, "\n";
    exit(0);
}

if ($command === 'dispatch') {
    $app->make(Illuminate\Contracts\Console\Kernel::class)->bootstrap();
    $job = new BenchFixedWork($argv[2], (int) $argv[3], microtime(true));
    $job->onQueue('default');
    $app->make(Illuminate\Contracts\Bus\Dispatcher::class)->dispatchToQueue($job);
    exit(0);
}

fwrite(STDERR, "usage: php dispatch.php calibrate MS | dispatch MARKER ROUNDS\n");
exit(2);
