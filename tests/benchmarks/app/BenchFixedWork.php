<?php

namespace App\Jobs;

use Illuminate\Bus\Queueable;
use Illuminate\Contracts\Queue\ShouldQueue;
use Illuminate\Foundation\Bus\Dispatchable;
use Illuminate\Queue\InteractsWithQueue;

/**
 * Benchmark job (copied into the app of a throwaway bench container by bench.py): a
 * FIXED amount of CPU work, so its run time grows when the CPU is contended. The
 * fixture's WritePing burns CPU until a wall-clock budget is spent, so its work_ms
 * stays the same under any load and cannot show contention.
 * Writes storage/app/markers/<marker>.json like WritePing, plus the CPU time it got.
 */
class BenchFixedWork implements ShouldQueue
{
    use Dispatchable, InteractsWithQueue, Queueable, WritesJsonFiles;

    /** @var string */
    public $marker;

    /** @var int sha256 rounds to compute (bench.py calibrates them to a CPU time) */
    public $rounds;

    /** @var float unix time (microseconds) when the job was dispatched */
    public $dispatchedAt;

    public function __construct(string $marker, int $rounds, float $dispatchedAt)
    {
        $this->marker = $marker;
        $this->rounds = $rounds;
        $this->dispatchedAt = $dispatchedAt;
    }

    public static function work(int $rounds): string
    {
        $digest = '';
        for ($i = 0; $i < $rounds; $i++) {
            $digest = hash('sha256', $digest.$i, true);
        }

        return $digest;
    }

    public static function cpuSeconds(): float
    {
        $usage = getrusage();

        return $usage['ru_utime.tv_sec'] + $usage['ru_utime.tv_usec'] / 1e6
            + $usage['ru_stime.tv_sec'] + $usage['ru_stime.tv_usec'] / 1e6;
    }

    public function handle(): void
    {
        $cpu = self::cpuSeconds();
        $start = hrtime(true);
        self::work($this->rounds);
        $workMs = (hrtime(true) - $start) / 1e6;
        $cpuMs = (self::cpuSeconds() - $cpu) * 1000;

        self::writeJson(storage_path('app/markers/'.$this->marker.'.json'), [
            'marker' => $this->marker,
            'pid' => getmypid(),
            'queue' => $this->currentQueue(),
            'rounds' => $this->rounds,
            'work_ms' => round($workMs, 3),
            'cpu_ms' => round($cpuMs, 3),
            'dispatched_at_unix' => $this->dispatchedAt,
            'processed_at_unix' => microtime(true),
        ]);
    }
}
