<?php
/**
 * Tests of Comet\Publisher against a real Caddy with the cometbox module.
 * No phpunit needed:
 *
 *     php php/tests/run.php
 *
 * prints one line per test and ends with "N passed, N failed"; the exit
 * status is 1 when any test failed. caddymodule/php_test.go boots Caddy from
 * testdata/php.Caddyfile and runs it; by hand, set the environment the same
 * way:
 *
 *   COMET_URL        the default hub, e.g. http://127.0.0.1:8080/comet
 *   COMET_KEYED_URL  a hub with publish_key COMET_KEYED_KEY (default s3cret)
 *   COMET_SMALL_URL  a hub with max_body_size 1KiB
 *   COMET_SOCKET     a unix socket Caddy serves the default hub on
 *   COMET_DOWN_URL   optional: a URL nothing listens on (default: a closed port)
 *
 * Retries are tested through relay.php, a flaky proxy this runner starts with
 * `php -S` in front of Caddy.
 */

declare(strict_types=1);

require __DIR__ . '/../Comet.php';

use Comet\PublishException;
use Comet\Publisher;

error_reporting(E_ALL);

// ---- a tiny test runner ----

final class Failure extends \Exception
{
}

/** @var array<string,callable> */
$tests = [];
/** @var string[] PHP warnings and notices raised during the current test */
$leaked = [];

function test(string $name, callable $fn): void
{
    global $tests;
    $tests[$name] = $fn;
}

function check(bool $ok, string $what): void
{
    if (!$ok) {
        throw new Failure($what);
    }
}

/** @param mixed $want @param mixed $got */
function same($want, $got, string $what): void
{
    if ($want !== $got) {
        throw new Failure("$what: want " . var_export($want, true) . ', got ' . var_export($got, true));
    }
}

function contains(string $needle, ?string $haystack, string $what): void
{
    if ($haystack === null || strpos($haystack, $needle) === false) {
        throw new Failure("$what: want text containing " . var_export($needle, true) . ', got ' . var_export($haystack, true));
    }
}

/** Runs $fn and returns the exception of class $class it throws. */
function raises(string $class, callable $fn): \Throwable
{
    try {
        $fn();
    } catch (\Throwable $e) {
        if ($e instanceof $class) {
            return $e;
        }
        throw new Failure("want $class, got " . get_class($e) . ': ' . $e->getMessage());
    }
    throw new Failure("want $class, nothing was thrown");
}

function runTests(): int
{
    global $tests, $leaked;
    // Any warning or notice, from the publisher or a test, fails the test:
    // a push outage must never print into someone's page.
    set_error_handler(function (int $no, string $message, string $file, int $line) use (&$leaked): bool {
        $leaked[] = "$message at " . basename($file) . ":$line";
        return true;
    });
    $passed = $failed = 0;
    foreach ($tests as $name => $fn) {
        $leaked = [];
        $start = microtime(true);
        $problem = null;
        try {
            $fn();
        } catch (\Throwable $e) {
            $problem = $e instanceof Failure ? $e->getMessage() : get_class($e) . ': ' . $e->getMessage() . ' at ' . basename($e->getFile()) . ':' . $e->getLine();
        }
        if ($problem === null && $leaked) {
            $problem = 'PHP raised: ' . implode('; ', $leaked);
        }
        $ms = (int) round((microtime(true) - $start) * 1000);
        if ($problem === null) {
            $passed++;
            echo "ok   $name ({$ms} ms)\n";
        } else {
            $failed++;
            echo "FAIL $name ({$ms} ms)\n     $problem\n";
        }
    }
    restore_error_handler();
    echo "$passed passed, $failed failed\n";
    return $failed;
}

// ---- environment ----

function env(string $name, ?string $default = null): string
{
    $value = getenv($name);
    if ($value === false || $value === '') {
        if ($default === null) {
            throw new Failure("environment variable $name is not set (see the top of run.php)");
        }
        return $default;
    }
    return $value;
}

/** A channel name no other test (or earlier run) used. */
function channel(string $base): string
{
    return $base . '.' . bin2hex(random_bytes(4));
}

/** A URL on a loopback port nothing listens on: connections are refused. */
function downUrl(): string
{
    $fromEnv = getenv('COMET_DOWN_URL');
    if ($fromEnv) {
        return $fromEnv;
    }
    $server = stream_socket_server('tcp://127.0.0.1:0');
    $port = parse_url('tcp://' . stream_socket_get_name($server, false), PHP_URL_PORT);
    fclose($server);
    return "http://127.0.0.1:$port/comet";
}

// ---- reading what the server stored, independently of the publisher ----

/**
 * Everything a channel retains, as a long-poll subscriber from `earliest`
 * gets it (plain polling: wait=0).
 *
 * @return array[] envelopes
 */
function stored(string $channel): array
{
    $ch = curl_init(env('COMET_URL') . '/sub/' . $channel . '?last_id=earliest&wait=0');
    curl_setopt_array($ch, [CURLOPT_RETURNTRANSFER => true, CURLOPT_TIMEOUT => 5]);
    $body = curl_exec($ch);
    $status = curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
    if ($body === false || $status !== 200) {
        throw new Failure("long-poll $channel: $status " . ($body === false ? curl_error($ch) : $body));
    }
    $answer = json_decode($body, true);
    check(is_array($answer) && isset($answer['messages']) && is_array($answer['messages']), "long-poll answer: $body");
    return $answer['messages'];
}

/** @return array the one envelope a channel holds */
function storedOne(string $channel): array
{
    $messages = stored($channel);
    same(1, count($messages), "messages stored in $channel");
    return $messages[0];
}

// ---- the flaky relay ----

/** @var array{proc: resource, url: string, state: string}|null */
$relay = null;

/** Starts relay.php under `php -S` once and returns its base URL. */
function relayUrl(): string
{
    global $relay;
    if ($relay !== null) {
        return $relay['url'];
    }
    $parts = parse_url(env('COMET_URL'));
    $target = $parts['scheme'] . '://' . $parts['host'] . (isset($parts['port']) ? ':' . $parts['port'] : '');
    $state = sys_get_temp_dir() . '/cometbox-relay-' . bin2hex(random_bytes(4));
    mkdir($state);
    $port = parse_url(downUrl(), PHP_URL_PORT);
    $env = getenv();
    $env['RELAY_TARGET'] = $target;
    $env['RELAY_STATE'] = $state;
    $env['RELAY_STALL'] = '1.5';
    // Several workers, so a stalled answer does not hold up the retry.
    $env['PHP_CLI_SERVER_WORKERS'] = '4';
    $log = ['file', "$state/server.log", 'a'];
    $proc = proc_open([PHP_BINARY, '-S', "127.0.0.1:$port", __DIR__ . '/relay.php'], [0 => ['file', '/dev/null', 'r'], 1 => $log, 2 => $log], $pipes, null, $env);
    check(is_resource($proc), 'start php -S for the relay');
    $relay = ['proc' => $proc, 'url' => "http://127.0.0.1:$port", 'state' => $state];
    register_shutdown_function('stopRelay');
    waitListening('127.0.0.1', (int) $port, "$state/server.log");
    return $relay['url'];
}

/** Waits until a freshly started server accepts connections. */
function waitListening(string $host, int $port, string $log): void
{
    $deadline = microtime(true) + 10;
    // A refused connection is expected until it listens; its warning is not
    // a leak of the code under test.
    set_error_handler(function (): bool {
        return true;
    });
    try {
        while (true) {
            $conn = stream_socket_client("tcp://$host:$port", $errno, $errstr, 1.0);
            if ($conn !== false) {
                fclose($conn);
                return;
            }
            if (microtime(true) > $deadline) {
                throw new Failure("relay did not start:\n" . file_get_contents($log));
            }
            usleep(20000); // polling another process's readiness
        }
    } finally {
        restore_error_handler();
    }
}

/**
 * Stops the relay: its workers first, since `php -S` leaves them running
 * when only the parent is told to stop.
 */
function stopRelay(): void
{
    global $relay;
    if ($relay === null) {
        return;
    }
    $pid = proc_get_status($relay['proc'])['pid'];
    foreach (glob('/proc/[0-9]*/stat') ?: [] as $stat) {
        $fields = explode(' ', (string) @file_get_contents($stat));
        if (isset($fields[3]) && (int) $fields[3] === $pid) {
            posix_kill((int) $fields[0], SIGTERM);
        }
    }
    proc_terminate($relay['proc']);
    proc_close($relay['proc']);
    array_map('unlink', glob($relay['state'] . '/*') ?: []);
    rmdir($relay['state']);
    $relay = null;
}

/** A publisher whose requests go through the relay in the given mode. */
function relayed(string $mode, string $transport, array $options = []): Publisher
{
    $path = parse_url(env('COMET_URL'), PHP_URL_PATH);
    return new Publisher(relayUrl() . "/$mode$path", ['transport' => $transport] + $options);
}

/** @return string[] the Idempotency-Keys of the attempts the relay saw for a path */
function attempts(string $path): array
{
    global $relay;
    $keys = [];
    foreach (file($relay['state'] . '/attempts.log', FILE_IGNORE_NEW_LINES) ?: [] as $line) {
        [, $p, $key] = explode("\t", $line) + [2 => ''];
        if ($p === $path) {
            $keys[] = $key;
        }
    }
    return $keys;
}

function comet(string $transport, array $options = []): Publisher
{
    return new Publisher(env('COMET_URL'), ['transport' => $transport] + $options);
}

// ---- the tests ----

foreach (['curl', 'stream'] as $t) {
    test("$t: publish text", function () use ($t) {
        $c = channel('text');
        $id = comet($t)->publish($c, 'hello <world> & ünïcode');
        check(is_string($id), 'publish returns an id');
        $m = storedOne($c);
        same($id, $m['id'], 'id');
        same('text/plain', $m['type'], 'type');
        same('hello <world> & ünïcode', $m['data'], 'data');
        check(!isset($m['event']), 'no event');
    });

    test("$t: publish array as JSON with an event", function () use ($t) {
        $c = channel('json');
        $comet = comet($t);
        $data = ['user' => 'ann', 'text' => 'hi', 'n' => 3, 'tags' => ['a', 'b']];
        $id = $comet->publish($c, $data, ['event' => 'say']);
        check(is_string($id), 'publish returns an id: ' . $comet->lastError());
        same(null, $comet->lastError(), 'lastError after success');
        $m = storedOne($c);
        same('application/json', $m['type'], 'type');
        same('say', $m['event'], 'event');
        same($data, $m['data'], 'data');
    });

    test("$t: publish a string with an explicit type", function () use ($t) {
        $c = channel('typed');
        $comet = comet($t);
        check(is_string($comet->publish($c, '{"already": "json"}', ['type' => 'application/json'])), 'JSON text');
        check(is_string($comet->publish($c, '<b>hi</b>', ['type' => 'text/html'])), 'HTML text');
        check(is_string($comet->publish($c, 42)), 'a number');
        $m = stored($c);
        same(['already' => 'json'], $m[0]['data'], 'JSON text arrives as a JSON value');
        same('text/html', $m[1]['type'], 'explicit type');
        same('<b>hi</b>', $m[1]['data'], 'HTML data');
        same(42, $m[2]['data'], 'number data');
    });

    test("$t: publishMany sends one JSON batch", function () use ($t) {
        $a = channel('batch');
        $b = channel('batch');
        $comet = comet($t);
        $ids = $comet->publishMany([
            ['channel' => $a, 'event' => 'one', 'data' => ['n' => 1]],
            ['channel' => $b, 'data' => 'two'],
            ['channel' => $a, 'data' => '<three/>', 'type' => 'application/xml'],
        ]);
        check(is_array($ids) && count($ids) === 3, 'three ids: ' . $comet->lastError());
        $inA = stored($a);
        $inB = storedOne($b);
        same([$ids[0], $ids[2]], array_column($inA, 'id'), "ids in $a");
        same($ids[1], $inB['id'], "id in $b");
        same(['n' => 1], $inA[0]['data'], 'JSON data');
        same('one', $inA[0]['event'], 'event');
        same('text/plain', $inB['type'], 'string data is text');
        same('application/xml', $inA[1]['type'], 'explicit type');
    });

    test("$t: publishMany in the original XML format", function () use ($t) {
        $a = channel('xml');
        $b = channel('xml');
        $comet = comet($t, ['format' => 'xml']);
        $ids = $comet->publishMany([
            ['channel' => $a, 'event' => 'note', 'data' => 'fish & <chips> "quoted"'],
            ['channel' => $b, 'data' => '<item id="1">x</item>', 'type' => 'application/xml'],
        ]);
        check(is_array($ids) && count($ids) === 2, 'two ids: ' . $comet->lastError());
        $text = storedOne($a);
        $xml = storedOne($b);
        same($ids[0], $text['id'], 'first id');
        same('fish & <chips> "quoted"', $text['data'], 'text is escaped on the way and decoded by the server');
        same('note', $text['event'], 'event attribute');
        same('text/plain', $text['type'], 'text type');
        same('<item id="1">x</item>', $xml['data'], 'XML payload verbatim');
        same('application/xml', $xml['type'], 'XML type');
        same(false, $comet->publishMany([['channel' => $a, 'data' => ['no' => 'arrays']]]), 'XML carries strings only');
    });

    test("$t: channelInfo describes a channel, null when unknown", function () use ($t) {
        $c = channel('info');
        $comet = comet($t);
        $comet->publish($c, 'one');
        $last = $comet->publish($c, 'two');
        $info = $comet->channelInfo($c);
        check(is_array($info), 'info: ' . $comet->lastError());
        same(['channel' => $c, 'subscribers' => 0, 'messages' => 2, 'last_id' => $last], $info, 'info');
        same(null, $comet->channelInfo(channel('never')), 'unknown channel');
        same(null, $comet->lastError(), 'an unknown channel is no failure');
        same(404, $comet->lastStatus(), 'status of the unknown channel');
    });

    test("$t: deleteChannel drops the channel and its history", function () use ($t) {
        $c = channel('delete');
        $comet = comet($t);
        $id = $comet->publish($c, 'doomed');
        $info = $comet->deleteChannel($c);
        check(is_array($info), 'delete: ' . $comet->lastError());
        same($id, $info['last_id'], 'the info as it was');
        same([], stored($c), 'history after delete');
        same(null, $comet->channelInfo($c), 'info after delete');
        same(null, $comet->deleteChannel($c), 'deleting again');
    });

    test("$t: server down returns false with a reason, no warning", function () use ($t) {
        $comet = new Publisher(downUrl(), ['transport' => $t]);
        $start = microtime(true);
        same(false, $comet->publish('x', 'lost'), 'publish');
        contains('no answer', $comet->lastError(), 'lastError');
        same(null, $comet->lastStatus(), 'no status without an answer');
        same(false, $comet->publishMany([['channel' => 'x', 'data' => 'lost']]), 'publishMany');
        same(false, $comet->channelInfo('x'), 'channelInfo');
        same(false, $comet->deleteChannel('x'), 'deleteChannel');
        check(microtime(true) - $start < 2, 'a refused connection fails fast');
    });

    test("$t: wrong publish_key is 403 with the server's reason", function () use ($t) {
        $url = env('COMET_KEYED_URL');
        $wrong = new Publisher($url, ['transport' => $t, 'publish_key' => 'guess']);
        same(false, $wrong->publish('keyed', 'x'), 'publish with a wrong key');
        same(403, $wrong->lastStatus(), 'status');
        contains('HTTP 403: publishing is not allowed', $wrong->lastError(), 'lastError');
        same(false, (new Publisher($url, ['transport' => $t]))->publish('keyed', 'x'), 'publish without a key');
        $right = new Publisher($url, ['transport' => $t, 'publish_key' => env('COMET_KEYED_KEY', 's3cret')]);
        check(is_string($right->publish('keyed', 'x')), 'publish with the key: ' . $right->lastError());
        check(is_array($right->channelInfo('keyed')), 'channelInfo with the key: ' . $right->lastError());
    });

    test("$t: body over max_body_size is 413", function () use ($t) {
        $comet = new Publisher(env('COMET_SMALL_URL'), ['transport' => $t]);
        check(is_string($comet->publish('small', str_repeat('a', 1024))), 'exactly 1 KiB is accepted: ' . $comet->lastError());
        same(false, $comet->publish('small', str_repeat('a', 1025)), 'one byte more');
        same(413, $comet->lastStatus(), 'status');
        contains('max_body_size', $comet->lastError(), 'lastError');
    });

    test("$t: throw mode raises PublishException with the status", function () use ($t) {
        $keyed = new Publisher(env('COMET_KEYED_URL'), ['transport' => $t, 'throw' => true]);
        $e = raises(PublishException::class, function () use ($keyed) {
            $keyed->publish('keyed', 'x');
        });
        same(403, $e->getStatus(), 'status of a refusal');
        contains('publishing is not allowed', $e->getMessage(), 'message');
        $down = new Publisher(downUrl(), ['transport' => $t, 'throw' => true]);
        $e = raises(PublishException::class, function () use ($down) {
            $down->publish('x', 'y');
        });
        same(0, $e->getStatus(), 'status when nothing answered');
        same(null, comet($t, ['throw' => true])->channelInfo(channel('never')), 'an unknown channel does not throw');
    });

    test("$t: retry after a 503 publishes once", function () use ($t) {
        $c = channel('retry503');
        $comet = relayed('fail503', $t, ['retries' => 2]);
        $id = $comet->publish($c, 'once');
        check(is_string($id), 'publish: ' . $comet->lastError());
        $keys = attempts("/comet/pub/$c");
        same(2, count($keys), 'attempts');
        same($keys[0], $keys[1], 'the retry carries the same Idempotency-Key');
        same($id, storedOne($c)['id'], 'stored once');
    });

    test("$t: retry after a lost answer publishes once", function () use ($t) {
        $c = channel('retry502');
        $comet = relayed('drop502', $t, ['retries' => 1]);
        $id = $comet->publish($c, 'once');
        check(is_string($id), 'publish: ' . $comet->lastError());
        same(2, count(attempts("/comet/pub/$c")), 'attempts');
        // The first attempt was stored; the retry is answered with its id.
        same($id, storedOne($c)['id'], 'stored once, and the id returned is the stored one');
    });

    test("$t: retry after a timeout publishes once", function () use ($t) {
        $c = channel('retrystall');
        $comet = relayed('stall', $t, ['retries' => 1, 'timeout' => 0.5]);
        $id = $comet->publish($c, 'once');
        check(is_string($id), 'publish: ' . $comet->lastError());
        same(2, count(attempts("/comet/pub/$c")), 'attempts');
        same($id, storedOne($c)['id'], 'stored once');
    });

    test("$t: a timeout without retries fails in time", function () use ($t) {
        $c = channel('stall');
        $comet = relayed('stall', $t, ['timeout' => 0.3]);
        $start = microtime(true);
        same(false, $comet->publish($c, 'late'), 'publish');
        $took = microtime(true) - $start;
        check($took < 1.2, "gave up after $took s, timeout is 0.3 s");
        contains('no answer', $comet->lastError(), 'lastError');
    });

    test("$t: retry of a batch publishes once", function () use ($t) {
        $c = channel('retrybatch');
        $comet = relayed('drop502', $t, ['retries' => 1]);
        $ids = $comet->publishMany([['channel' => $c, 'data' => 'a'], ['channel' => $c, 'data' => 'b']]);
        check(is_array($ids), 'publishMany: ' . $comet->lastError());
        same($ids, array_column(stored($c), 'id'), 'stored once');
    });

    test("$t: no retry unless asked, and none after a 4xx", function () use ($t) {
        $c = channel('noretry');
        $comet = relayed('fail503', $t);
        same(false, $comet->publish($c, 'x'), 'publish');
        same(503, $comet->lastStatus(), 'status');
        same(1, count(attempts("/comet/pub/$c")), 'attempts without retries');
        $keyedPath = parse_url(env('COMET_KEYED_URL'), PHP_URL_PATH);
        $keyed = new Publisher(relayUrl() . "/pass$keyedPath", ['transport' => $t, 'retries' => 3]);
        same(false, $keyed->publish($c, 'x'), 'publish with no key');
        same(1, count(attempts("$keyedPath/pub/$c")), 'attempts after a 403');
    });

    test("$t: retries give up with the last reason", function () use ($t) {
        $c = channel('giveup');
        $comet = relayed('always503', $t, ['retries' => 2]);
        same(false, $comet->publish($c, 'x'), 'publish');
        contains('HTTP 503: relay: simulated outage (after 3 attempts)', $comet->lastError(), 'lastError');
        $keys = attempts("/comet/pub/$c");
        same(3, count($keys), 'attempts');
        same(1, count(array_unique($keys)), 'one Idempotency-Key for all attempts');
    });

    test("$t: bad input fails softly", function () use ($t) {
        $comet = comet($t);
        same(false, $comet->publish('x', ['bad' => "\xff"]), 'data that is not UTF-8');
        contains('JSON', $comet->lastError(), 'lastError');
        same(false, $comet->publish('x', 'y', ['event' => "a\r\nX-Injected: 1"]), 'a line break in a header');
        contains('control character', $comet->lastError(), 'lastError');
        same(false, $comet->publish('bad name', 'y'), 'a bad channel name');
        contains('HTTP 400: channel name', $comet->lastError(), 'the server says which rule failed');
        same(false, $comet->publish('x', ['a' => 1], ['type' => 'text/plain']), 'an array as text');
        same(false, $comet->publish('x', 'y', ['evnt' => 'typo']), 'an unknown option');
        same(false, $comet->publishMany([['channel' => 'x']]), 'a batch message without data');
    });

    test("$t: an explicit idempotency_key makes a repeat a no-op", function () use ($t) {
        $c = channel('idem');
        $comet = comet($t);
        $first = $comet->publish($c, 'once', ['idempotency_key' => 'order-' . $c]);
        $again = $comet->publish($c, 'once', ['idempotency_key' => 'order-' . $c]);
        check(is_string($first), 'publish: ' . $comet->lastError());
        same($first, $again, 'the same id answered again');
        $batch = [['channel' => $c, 'data' => 'b1'], ['channel' => $c, 'data' => 'b2']];
        $ids = $comet->publishMany($batch, ['idempotency_key' => 'batch-' . $c]);
        check(is_array($ids), 'publishMany: ' . $comet->lastError());
        same($ids, $comet->publishMany($batch, ['idempotency_key' => 'batch-' . $c]), 'a repeated batch');
        same(3, count(stored($c)), 'messages stored');
    });
}

test('auto transport picks curl when loaded', function () {
    same('curl', (new Publisher(env('COMET_URL')))->transport(), 'transport');
});

test('curl over a unix socket', function () {
    $comet = new Publisher('http://localhost/comet', ['unix_socket' => env('COMET_SOCKET')]);
    $c = channel('unix');
    $id = $comet->publish($c, ['via' => 'socket'], ['event' => 'unix']);
    check(is_string($id), 'publish: ' . $comet->lastError());
    $ids = $comet->publishMany([['channel' => $c, 'data' => 'batch']]);
    check(is_array($ids), 'publishMany: ' . $comet->lastError());
    same([$id, $ids[0]], array_column(stored($c), 'id'), 'stored, as seen over TCP');
    same(2, $comet->channelInfo($c)['messages'] ?? null, 'channelInfo over the socket');
    $missing = new Publisher('http://localhost/comet', ['unix_socket' => env('COMET_SOCKET') . '.missing']);
    same(false, $missing->publish($c, 'x'), 'a socket that does not exist');
    contains('no answer', $missing->lastError(), 'lastError');
});

test('the stream transport refuses unix_socket', function () {
    raises(\InvalidArgumentException::class, function () {
        new Publisher('http://localhost/comet', ['transport' => 'stream', 'unix_socket' => '/tmp/x.sock']);
    });
});

test('constructor refuses mistakes', function () {
    $bad = [
        ['ftp://example.com/comet', []],
        ['not a url', []],
        ['http://127.0.0.1/comet', ['timout' => 1]],
        ['http://127.0.0.1/comet', ['transport' => 'sockets']],
        ['http://127.0.0.1/comet', ['format' => 'yaml']],
        ['http://127.0.0.1/comet', ['retries' => -1]],
        ['http://127.0.0.1/comet', ['timeout' => 0]],
        ['http://127.0.0.1/comet', ['publish_key' => "k\n"]],
    ];
    foreach ($bad as [$url, $options]) {
        raises(\InvalidArgumentException::class, function () use ($url, $options) {
            new Publisher($url, $options);
        });
    }
});

test('subscribeToken is an HS256 JWT (RFC 7519)', function () {
    $key = 'token-secret';
    $comet = new Publisher(env('COMET_URL'), ['token_key' => $key]);
    $before = time();
    $token = $comet->subscribeToken(['user.42', 'news.*'], 600);
    check(preg_match('/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/', $token) === 1, "three base64url parts without padding: $token");
    [$h, $p, $s] = explode('.', $token);
    $decode = function (string $part): string {
        return base64_decode(strtr($part, '-_', '+/'), true);
    };
    same(['alg' => 'HS256', 'typ' => 'JWT'], json_decode($decode($h), true), 'header');
    $claims = json_decode($decode($p), true);
    same(['user.42', 'news.*'], $claims['channels'], 'channels claim');
    check($claims['iat'] >= $before && $claims['iat'] <= time(), 'iat is now');
    same(600, $claims['exp'] - $claims['iat'], 'exp is iat + ttl');
    check(hash_equals(hash_hmac('sha256', "$h.$p", $key, true), $decode($s)), 'HMAC-SHA256 signature over header.payload');

    $one = explode('.', $comet->subscribeToken('user.7'))[1];
    $claims = json_decode($decode($one), true);
    same(['user.7'], $claims['channels'], 'a single channel becomes a list');
    same(3600, $claims['exp'] - $claims['iat'], 'default ttl');

    raises(\LogicException::class, function () {
        (new Publisher(env('COMET_URL')))->subscribeToken('x');
    });
    raises(\InvalidArgumentException::class, function () use ($comet) {
        $comet->subscribeToken([]);
    });
    raises(\InvalidArgumentException::class, function () use ($comet) {
        $comet->subscribeToken('x', 0);
    });
});

exit(runTests() > 0 ? 1 : 0);
