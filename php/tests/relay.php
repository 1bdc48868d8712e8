<?php
/**
 * A flaky proxy in front of Caddy, run by `php -S` as a router script, so
 * that run.php can test retries against real failures: a 503 before the
 * message reached the hub, a 502 after it was stored (the answer is lost),
 * and an answer that comes too late (the publisher times out after the hub
 * stored the message).
 *
 * Paths are /{mode}/{the path on Caddy}, e.g. /drop502/comet/pub/chat.
 * Modes, applied to the first attempt of each Idempotency-Key only (retries
 * go through untouched), except `always503`:
 *
 *   pass       forward every attempt
 *   fail503    answer 503 without forwarding
 *   always503  answer 503 to every attempt
 *   drop502    forward, then answer 502 instead of Caddy's answer
 *   stall      forward, then wait RELAY_STALL seconds before answering
 *
 * Every attempt is logged to {RELAY_STATE}/attempts.log as
 * "mode<TAB>path<TAB>idempotency key" for the tests to count.
 *
 * Environment: RELAY_TARGET (Caddy's base URL), RELAY_STATE (a directory),
 * RELAY_STALL (seconds, default 2).
 */

declare(strict_types=1);

$target = rtrim((string) getenv('RELAY_TARGET'), '/');
$state = (string) getenv('RELAY_STATE');
$stall = (float) (getenv('RELAY_STALL') ?: 2);

$uri = $_SERVER['REQUEST_URI'];
if (!preg_match('#^/(pass|fail503|always503|drop502|stall)(/.*)$#', $uri, $m)) {
    answer(404, '{"error":"relay: unknown mode in ' . addslashes($uri) . '"}');
    return true;
}
[, $mode, $rest] = $m;
$headers = getallheaders();
$key = $headers['Idempotency-Key'] ?? '';

file_put_contents("$state/attempts.log", "$mode\t$rest\t$key\n", FILE_APPEND | LOCK_EX);
$first = isFirstAttempt($state, $mode, $key);

if ($mode === 'always503' || ($mode === 'fail503' && $first)) {
    answer(503, '{"error":"relay: simulated outage"}');
    return true;
}
[$status, $contentType, $body] = forward($target . $rest, $headers);
if ($first && $mode === 'drop502') {
    answer(502, '{"error":"relay: answer lost"}');
    return true;
}
if ($first && $mode === 'stall') {
    usleep((int) ($stall * 1e6));
}
answer($status, $body, $contentType);
return true;

/** True for the first request carrying this key in this mode: creating the marker file is atomic. */
function isFirstAttempt(string $state, string $mode, string $key): bool
{
    if ($key === '') {
        return true;
    }
    // 'x' fails when the marker exists; that warning is the expected answer.
    $marker = @fopen("$state/" . sha1("$mode\0$key"), 'x');
    if ($marker === false) {
        return false;
    }
    fclose($marker);
    return true;
}

/** @return array{0: int, 1: string, 2: string} */
function forward(string $url, array $headers): array
{
    $send = [];
    foreach (['Content-Type', 'Comet-Event', 'Idempotency-Key', 'Authorization'] as $name) {
        if (isset($headers[$name])) {
            $send[] = "$name: {$headers[$name]}";
        }
    }
    $send[] = 'Expect:';
    $ch = curl_init($url);
    curl_setopt_array($ch, [
        CURLOPT_CUSTOMREQUEST => $_SERVER['REQUEST_METHOD'],
        CURLOPT_HTTPHEADER => $send,
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_TIMEOUT => 10,
    ]);
    if ($_SERVER['REQUEST_METHOD'] === 'POST') {
        curl_setopt($ch, CURLOPT_POSTFIELDS, file_get_contents('php://input'));
    }
    $body = curl_exec($ch);
    if ($body === false) {
        return [502, 'application/json', json_encode(['error' => 'relay: ' . curl_error($ch)])];
    }
    return [(int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE), (string) curl_getinfo($ch, CURLINFO_CONTENT_TYPE), $body];
}

function answer(int $status, string $body, string $contentType = 'application/json'): void
{
    http_response_code($status);
    header('Content-Type: ' . $contentType);
    echo $body;
}
