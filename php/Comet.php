<?php
/**
 * cometbox publisher for PHP: one file, no Composer, PHP 7.4 or newer.
 *
 *     require 'Comet.php';
 *     $comet = new Comet\Publisher('http://127.0.0.1:8080/comet');
 *     $comet->publish('chat', ['user' => 'ann', 'text' => 'hello'], ['event' => 'say']);
 *
 * A push outage must never break the page that publishes: by default every
 * method returns false when it fails, lastError() says why, and no PHP
 * warning or notice escapes. With the option `throw` a failure raises
 * Comet\PublishException instead.
 *
 * Wire protocol: see README.md of cometbox (routes, envelope, answers).
 *
 * @license Apache-2.0
 */

declare(strict_types=1);

namespace Comet;

/**
 * A publish, channel info or delete that failed, raised when the Publisher
 * was made with `'throw' => true`.
 */
class PublishException extends \RuntimeException
{
    /** @var int */
    private $status;

    public function __construct(string $message, int $status = 0, ?\Throwable $previous = null)
    {
        parent::__construct($message, $status, $previous);
        $this->status = $status;
    }

    /** The HTTP status the server answered, or 0 when no answer came. */
    public function getStatus(): int
    {
        return $this->status;
    }
}

/**
 * Publishes to a cometbox hub over HTTP, with curl or, when the curl
 * extension is missing, PHP's own http:// stream wrapper.
 */
final class Publisher
{
    public const VERSION = '1.0.0';

    /** Options and their defaults; any other key is a mistake and refused. */
    private const DEFAULTS = [
        'transport' => 'auto',      // auto | curl | stream
        'timeout' => 2.0,           // seconds for a whole request (each attempt)
        'connect_timeout' => 1.0,   // seconds to connect (curl; see README for streams)
        'publish_key' => null,      // sent as "Authorization: Bearer <key>"
        'unix_socket' => null,      // path of a unix socket Caddy listens on (curl only)
        'retries' => 0,             // extra attempts after a connection error or 5xx
        'throw' => false,           // raise PublishException instead of returning false
        'token_key' => null,        // secret that signs subscribeToken()
        'format' => 'json',         // json | xml: the body publishMany() sends
    ];

    /** First pause between two attempts, in seconds; doubled each time. */
    private const BACKOFF = 0.1;
    /** Longest pause between two attempts, in seconds. */
    private const MAX_BACKOFF = 1.0;

    /** @var string the comet prefix URL, without a trailing slash */
    private $url;
    /** @var string the path of the prefix URL, for error messages */
    private $prefixPath;
    /** @var array<string,mixed> */
    private $options;
    /** @var string curl or stream */
    private $transport;
    /** @var resource|\CurlHandle|null one handle kept for connection reuse */
    private $curl;
    /** @var string|null */
    private $lastError;
    /** @var int|null */
    private $lastStatus;

    /**
     * @param string $url     the comet prefix URL, e.g. http://127.0.0.1:8080/comet
     * @param array  $options see DEFAULTS and php/README.md
     *
     * @throws \InvalidArgumentException on an unknown option or a bad value:
     *         a mistake in the code, not an outage, so it is raised always.
     */
    public function __construct(string $url, array $options = [])
    {
        $unknown = array_diff_key($options, self::DEFAULTS);
        if ($unknown) {
            throw new \InvalidArgumentException('Comet\Publisher: unknown option(s): ' . implode(', ', array_keys($unknown)));
        }
        $this->options = $options + self::DEFAULTS;
        $this->url = rtrim($url, '/');
        $this->prefixPath = self::validateUrl($this->url);
        $this->validateOptions();
        $this->transport = $this->chooseTransport();
    }

    public function __destruct()
    {
        if ($this->curl !== null && PHP_VERSION_ID < 80000) {
            curl_close($this->curl); // PHP 8 frees the CurlHandle object itself
        }
    }

    /**
     * Publishes one message.
     *
     * @param mixed $data a string is sent as text/plain (or as the given
     *                    `type`); anything else is JSON-encoded and sent as
     *                    application/json
     * @param array $opts event, type, idempotency_key
     *
     * @return string|false the message id, or false (see lastError())
     */
    public function publish(string $channel, $data, array $opts = [])
    {
        $this->reset();
        $unknown = array_diff_key($opts, ['event' => 1, 'type' => 1, 'idempotency_key' => 1]);
        if ($unknown) {
            return $this->fail('publish: unknown option(s): ' . implode(', ', array_keys($unknown)));
        }
        [$payload, $typeOrReason] = self::encodeData($data, isset($opts['type']) ? (string) $opts['type'] : null);
        if ($payload === null) {
            return $this->fail('publish: ' . $typeOrReason);
        }
        $headers = ['Content-Type' => $typeOrReason];
        if (isset($opts['event']) && $opts['event'] !== '') {
            $headers['Comet-Event'] = (string) $opts['event'];
        }
        $headers['Idempotency-Key'] = $this->idempotencyKey($opts);

        $response = $this->request('POST', '/pub/' . self::channelPath($channel), $payload, $headers);
        if ($response === null) {
            return false;
        }
        $answer = json_decode($response->body, true);
        if (!is_array($answer) || !isset($answer['id']) || !is_string($answer['id'])) {
            return $this->fail($this->describe('POST', '/pub/' . $channel) . ': answer without an id', $response->status);
        }
        return $answer['id'];
    }

    /**
     * Publishes several messages in one request, stored all or none.
     *
     * @param array $messages list of ['channel' => .., 'data' => .., 'event' => .., 'type' => ..]
     * @param array $opts     idempotency_key
     *
     * @return string[]|false the ids in the order of $messages, or false
     */
    public function publishMany(array $messages, array $opts = [])
    {
        $this->reset();
        $unknown = array_diff_key($opts, ['idempotency_key' => 1]);
        if ($unknown) {
            return $this->fail('publishMany: unknown option(s): ' . implode(', ', array_keys($unknown)));
        }
        if (!$messages) {
            return $this->fail('publishMany: no messages');
        }
        $xml = $this->options['format'] === 'xml';
        [$body, $reason] = $xml ? self::xmlBatch($messages) : self::jsonBatch($messages);
        if ($body === null) {
            return $this->fail('publishMany: ' . $reason);
        }
        $headers = [
            'Content-Type' => $xml ? 'application/xml; charset=utf-8' : 'application/json',
            'Idempotency-Key' => $this->idempotencyKey($opts),
        ];
        $response = $this->request('POST', '/pub', $body, $headers);
        if ($response === null) {
            return false;
        }
        $ids = $xml ? self::idsFromXml($response->body) : self::idsFromJson($response->body);
        if ($ids === null || count($ids) !== count($messages)) {
            return $this->fail($this->describe('POST', '/pub') . ': answer does not hold one id per message', $response->status);
        }
        return $ids;
    }

    /**
     * Describes a channel: subscribers, messages (buffered), last_id.
     *
     * @return array|null|false the info, null when the channel is unknown
     *                          (404), false on failure
     */
    public function channelInfo(string $channel)
    {
        return $this->channelRequest('GET', $channel);
    }

    /**
     * Deletes a channel and its history; its subscribers get comet.deleted.
     *
     * @return array|null|false the channel's info as it was, null when the
     *                          channel is unknown (404), false on failure
     */
    public function deleteChannel(string $channel)
    {
        return $this->channelRequest('DELETE', $channel);
    }

    /**
     * Mints a subscribe token (SPEC §6): an HS256 JSON Web Token (RFC 7519)
     * with the claims `channels` (channel patterns), `iat` and `exp`, signed
     * with the option `token_key`. Hand it to the browser, which presents it
     * as `Authorization: Bearer`, `?token=` or a cookie.
     *
     * @param string|string[] $channels channel names or patterns (`user.42`, `news.*`)
     * @param int             $ttl      seconds the token is valid
     *
     * @throws \LogicException           when no token_key is configured
     * @throws \InvalidArgumentException on no channel or a ttl below 1
     */
    public function subscribeToken($channels, int $ttl = 3600): string
    {
        $key = $this->options['token_key'];
        if ($key === null || $key === '') {
            throw new \LogicException('Comet\Publisher: subscribeToken() needs the option token_key');
        }
        $channels = is_array($channels) ? array_values($channels) : [$channels];
        if (!$channels) {
            throw new \InvalidArgumentException('subscribeToken: no channel given');
        }
        foreach ($channels as $c) {
            if (!is_string($c) || $c === '') {
                throw new \InvalidArgumentException('subscribeToken: channels must be non-empty strings');
            }
        }
        if ($ttl < 1) {
            throw new \InvalidArgumentException('subscribeToken: ttl must be at least 1 second');
        }
        $now = time();
        $header = ['alg' => 'HS256', 'typ' => 'JWT'];
        $claims = ['channels' => $channels, 'iat' => $now, 'exp' => $now + $ttl];
        $signingInput = self::base64url(self::json($header)) . '.' . self::base64url(self::json($claims));
        return $signingInput . '.' . self::base64url(hash_hmac('sha256', $signingInput, $key, true));
    }

    /** Why the last call failed, or null when it succeeded. */
    public function lastError(): ?string
    {
        return $this->lastError;
    }

    /** The HTTP status of the last answer, or null when none came. */
    public function lastStatus(): ?int
    {
        return $this->lastStatus;
    }

    /** The transport in use: curl or stream. */
    public function transport(): string
    {
        return $this->transport;
    }

    // ---- configuration ----

    /** Returns the URL's path; refuses what is not an http(s) URL. */
    private static function validateUrl(string $url): string
    {
        $parts = parse_url($url);
        if ($parts === false || !isset($parts['scheme'], $parts['host'])
            || !in_array(strtolower($parts['scheme']), ['http', 'https'], true)) {
            throw new \InvalidArgumentException("Comet\\Publisher: \"$url\" is not an http(s) URL");
        }
        if (isset($parts['query']) || isset($parts['fragment'])) {
            throw new \InvalidArgumentException('Comet\Publisher: the comet URL takes no query or fragment');
        }
        return $parts['path'] ?? '';
    }

    private function validateOptions(): void
    {
        $o = &$this->options;
        if (!in_array($o['transport'], ['auto', 'curl', 'stream'], true)) {
            throw new \InvalidArgumentException('Comet\Publisher: transport must be auto, curl or stream');
        }
        if (!in_array($o['format'], ['json', 'xml'], true)) {
            throw new \InvalidArgumentException('Comet\Publisher: format must be json or xml');
        }
        foreach (['timeout', 'connect_timeout'] as $name) {
            if ((!is_int($o[$name]) && !is_float($o[$name])) || $o[$name] <= 0) {
                throw new \InvalidArgumentException("Comet\\Publisher: $name must be a number of seconds above 0");
            }
            $o[$name] = (float) $o[$name];
        }
        if (!is_int($o['retries']) || $o['retries'] < 0) {
            throw new \InvalidArgumentException('Comet\Publisher: retries must be an int, 0 or more');
        }
        if (!is_bool($o['throw'])) {
            throw new \InvalidArgumentException('Comet\Publisher: throw must be a bool');
        }
        foreach (['publish_key', 'unix_socket', 'token_key'] as $name) {
            if ($o[$name] !== null && !is_string($o[$name])) {
                throw new \InvalidArgumentException("Comet\\Publisher: $name must be a string");
            }
        }
        if ($o['publish_key'] !== null && !self::headerSafe($o['publish_key'])) {
            throw new \InvalidArgumentException('Comet\Publisher: publish_key holds a control character');
        }
    }

    private function chooseTransport(): string
    {
        $hasCurl = extension_loaded('curl');
        $transport = $this->options['transport'];
        if ($transport === 'auto') {
            $transport = $hasCurl ? 'curl' : 'stream';
        }
        if ($transport === 'curl' && !$hasCurl) {
            throw new \InvalidArgumentException('Comet\Publisher: transport curl needs the curl extension');
        }
        if ($this->options['unix_socket'] !== null && $transport !== 'curl') {
            // PHP's http:// wrapper cannot connect to a unix socket.
            throw new \InvalidArgumentException('Comet\Publisher: unix_socket needs the curl transport');
        }
        return $transport;
    }

    // ---- encoding ----

    /**
     * [body, Content-Type] of one message, or [null, reason].
     *
     * @param mixed $data
     * @return array{0: ?string, 1: string}
     */
    private static function encodeData($data, ?string $type): array
    {
        if (is_string($data)) {
            return [$data, $type ?? 'text/plain'];
        }
        if ($type !== null && !self::isJsonType($type)) {
            return [null, "data of type $type must be a string; only JSON types take arrays and objects"];
        }
        try {
            return [self::json($data), $type ?? 'application/json'];
        } catch (\JsonException $e) {
            return [null, 'data cannot be encoded as JSON: ' . $e->getMessage()];
        }
    }

    /** @return array{0: ?string, 1: string} the JSON batch body, or [null, reason] */
    private static function jsonBatch(array $messages): array
    {
        $list = [];
        foreach (array_values($messages) as $i => $m) {
            if (!is_array($m) || !isset($m['channel']) || !is_string($m['channel']) || !array_key_exists('data', $m)) {
                return [null, "message $i needs a channel (string) and data"];
            }
            $unknown = array_diff_key($m, ['channel' => 1, 'data' => 1, 'event' => 1, 'type' => 1]);
            if ($unknown) {
                return [null, "message $i: unknown field(s): " . implode(', ', array_keys($unknown))];
            }
            $item = ['channel' => $m['channel']];
            if (isset($m['event']) && $m['event'] !== '') {
                $item['event'] = (string) $m['event'];
            }
            if (isset($m['type'])) {
                $item['type'] = (string) $m['type'];
            }
            // The server reads a JSON string as text and any other value as
            // JSON data, the same rule publish() follows.
            $item['data'] = $m['data'];
            $list[] = $item;
        }
        try {
            return [self::json(['messages' => $list]), ''];
        } catch (\JsonException $e) {
            return [null, 'data cannot be encoded as JSON: ' . $e->getMessage()];
        }
    }

    /**
     * The batch in the original cometbox XML format:
     * <messages><message channel=".." event="..">text</message></messages>.
     * Data is text; with a type of application/xml (or +xml) it is taken as
     * XML markup and sent verbatim.
     *
     * @return array{0: ?string, 1: string}
     */
    private static function xmlBatch(array $messages): array
    {
        $xml = '<?xml version="1.0" encoding="UTF-8"?>' . "\n<messages>";
        foreach (array_values($messages) as $i => $m) {
            if (!is_array($m) || !isset($m['channel']) || !is_string($m['channel']) || !isset($m['data'])) {
                return [null, "message $i needs a channel (string) and data"];
            }
            if (!is_string($m['data'])) {
                return [null, "message $i: format xml sends text; data must be a string"];
            }
            $type = isset($m['type']) ? (string) $m['type'] : 'text/plain';
            $raw = self::isXmlType($type);
            if (!$raw && strpos($type, 'text/plain') !== 0) {
                return [null, "message $i: format xml carries text/plain or XML, not $type"];
            }
            $strings = [$m['channel'], $m['data'], (string) ($m['event'] ?? '')];
            foreach ($strings as $s) {
                if (!self::isUtf8($s)) {
                    return [null, "message $i is not valid UTF-8"];
                }
            }
            $xml .= '<message channel="' . self::xmlEscape($m['channel']) . '"';
            if (isset($m['event']) && $m['event'] !== '') {
                $xml .= ' event="' . self::xmlEscape((string) $m['event']) . '"';
            }
            $xml .= '>' . ($raw ? $m['data'] : self::xmlEscape($m['data'])) . '</message>';
        }
        return [$xml . '</messages>', ''];
    }

    /** @return string[]|null */
    private static function idsFromJson(string $body): ?array
    {
        $answer = json_decode($body, true);
        if (!is_array($answer) || !isset($answer['messages']) || !is_array($answer['messages'])) {
            return null;
        }
        $ids = [];
        foreach ($answer['messages'] as $m) {
            if (!is_array($m) || !isset($m['id']) || !is_string($m['id'])) {
                return null;
            }
            $ids[] = $m['id'];
        }
        return $ids;
    }

    /**
     * Reads the ids of an XML answer, <message id=".." channel=".." subscribers=".."/>
     * elements in order. A pattern, not an XML parser, because the SimpleXML
     * and DOM extensions are often missing and the answer's shape is fixed.
     *
     * @return string[]|null
     */
    private static function idsFromXml(string $body): ?array
    {
        if (!preg_match_all('/<message\s[^>]*?\bid="([^"]*)"/', $body, $found)) {
            return null;
        }
        return array_map(function (string $id): string {
            return html_entity_decode($id, ENT_QUOTES | ENT_XML1, 'UTF-8');
        }, $found[1]);
    }

    // ---- HTTP ----

    /** @return array|null|false */
    private function channelRequest(string $method, string $channel)
    {
        $this->reset();
        $response = $this->request($method, '/pub/' . self::channelPath($channel), null, [], [404]);
        if ($response === null) {
            return false;
        }
        if ($response->status === 404) {
            return null;
        }
        $info = json_decode($response->body, true);
        if (!is_array($info)) {
            return $this->fail($this->describe($method, '/pub/' . $channel) . ': answer is not a JSON object', $response->status);
        }
        return $info;
    }

    /**
     * Sends a request, retrying connection errors and 5xx answers up to
     * `retries` times with the same headers (so the same Idempotency-Key:
     * the server stores a retried publish once). Returns the answer when its
     * status is 2xx or listed in $accept, else records the failure and
     * returns null (or throws).
     *
     * @param array<string,string> $headers
     * @param int[]                $accept  non-2xx statuses the caller handles
     */
    private function request(string $method, string $path, ?string $body, array $headers, array $accept = []): ?Response
    {
        foreach ($headers as $name => $value) {
            if (!self::headerSafe($value)) {
                $this->fail($this->describe($method, $path) . ": header $name holds a control character");
                return null;
            }
        }
        if ($this->options['publish_key'] !== null) {
            $headers['Authorization'] = 'Bearer ' . $this->options['publish_key'];
        }
        $headers['User-Agent'] = 'cometbox-php/' . self::VERSION;
        $attempts = $this->options['retries'] + 1;
        for ($attempt = 1; ; $attempt++) {
            $response = $this->transport === 'curl'
                ? $this->curlSend($method, $path, $body, $headers)
                : $this->streamSend($method, $path, $body, $headers);
            $retryable = $response->status === 0 || $response->status >= 500;
            if (!$retryable || $attempt >= $attempts) {
                break;
            }
            $this->pause($attempt);
        }
        $this->lastStatus = $response->status ?: null;
        if (($response->status >= 200 && $response->status < 300) || in_array($response->status, $accept, true)) {
            return $response;
        }
        $message = $this->describe($method, $path) . ': ' . $response->problem();
        if ($attempt > 1) {
            $message .= " (after $attempt attempts)";
        }
        $this->fail($message, $response->status);
        return null;
    }

    /** Sleeps before attempt $attempt+1: exponential, with jitter so many workers do not retry in step. */
    private function pause(int $attempt): void
    {
        $seconds = min(self::MAX_BACKOFF, self::BACKOFF * 2 ** ($attempt - 1));
        usleep((int) ($seconds * (0.5 + mt_rand() / mt_getrandmax() / 2) * 1e6));
    }

    /** @param array<string,string> $headers */
    private function curlSend(string $method, string $path, ?string $body, array $headers): Response
    {
        if ($this->curl === null) {
            $this->curl = curl_init();
        } else {
            curl_reset($this->curl); // keeps the connection cache: one connection for many publishes
        }
        $lines = [];
        foreach ($headers as $name => $value) {
            $lines[] = "$name: $value";
        }
        // curl would otherwise wait up to 1 s for "100 Continue" before
        // sending a body over 1 KiB.
        $lines[] = 'Expect:';
        $options = [
            CURLOPT_URL => $this->url . $path,
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_HTTPHEADER => $lines,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_TIMEOUT_MS => (int) ceil($this->options['timeout'] * 1000),
            CURLOPT_CONNECTTIMEOUT_MS => (int) ceil($this->options['connect_timeout'] * 1000),
            // Without it curl uses signals for DNS timeouts and refuses any
            // timeout below one second.
            CURLOPT_NOSIGNAL => true,
            CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
        ];
        if ($body !== null) {
            $options[CURLOPT_POSTFIELDS] = $body;
        }
        if ($method === 'GET') {
            $options[CURLOPT_HTTPGET] = true;
        }
        if ($this->options['unix_socket'] !== null) {
            $options[CURLOPT_UNIX_SOCKET_PATH] = $this->options['unix_socket'];
        }
        curl_setopt_array($this->curl, $options);
        $answer = curl_exec($this->curl);
        if ($answer === false || curl_errno($this->curl) !== 0) {
            return Response::failed(curl_error($this->curl) ?: 'curl error ' . curl_errno($this->curl));
        }
        $status = (int) curl_getinfo($this->curl, CURLINFO_RESPONSE_CODE);
        return new Response($status, (string) $answer);
    }

    /**
     * Sends with PHP's http:// wrapper. Its one `timeout` bounds the connect
     * and the wait for the answer's headers; the body is then read against
     * what is left of the total timeout.
     *
     * @param array<string,string> $headers
     */
    private function streamSend(string $method, string $path, ?string $body, array $headers): Response
    {
        $lines = [];
        foreach ($headers as $name => $value) {
            $lines[] = "$name: $value";
        }
        $lines[] = 'Connection: close';
        $http = [
            'method' => $method,
            'header' => implode("\r\n", $lines),
            'timeout' => $this->options['timeout'],
            'ignore_errors' => true, // read the {"error":..} body of a 4xx/5xx
            'follow_location' => 0,
            'protocol_version' => 1.1,
        ];
        if ($body !== null) {
            $http['content'] = $body;
        }
        $context = stream_context_create(['http' => $http]); // https:// reads these too
        $deadline = microtime(true) + $this->options['timeout'];

        // The wrapper reports a refused connection as a warning. It is
        // captured here, for lastError(), rather than silenced with @, which
        // would still reach the application's own error handler.
        $warning = null;
        set_error_handler(function (int $no, string $message) use (&$warning): bool {
            $warning = $message;
            return true;
        });
        try {
            $stream = fopen($this->url . $path, 'rb', false, $context);
            if ($stream === false) {
                return Response::failed(self::streamProblem($warning));
            }
            $meta = stream_get_meta_data($stream);
            $status = self::statusOf($meta['wrapper_data'] ?? []);
            $answer = self::readUntil($stream, $deadline);
            fclose($stream);
        } finally {
            restore_error_handler();
        }
        if ($answer === null) {
            return Response::failed('timed out reading the answer after ' . $this->options['timeout'] . ' s');
        }
        if ($status === 0) {
            return Response::failed('no HTTP status line in the answer');
        }
        return new Response($status, $answer);
    }

    /** @param resource $stream */
    private static function readUntil($stream, float $deadline): ?string
    {
        $answer = '';
        while (!feof($stream)) {
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                return null;
            }
            stream_set_timeout($stream, (int) $left, (int) (($left - (int) $left) * 1e6));
            $chunk = fread($stream, 8192);
            if (stream_get_meta_data($stream)['timed_out']) {
                return null;
            }
            if ($chunk === false) {
                break;
            }
            $answer .= $chunk;
        }
        return $answer;
    }

    /**
     * The status of the last response in the wrapper's header lines (the
     * same lines as $http_response_header).
     *
     * @param mixed $lines
     */
    private static function statusOf($lines): int
    {
        $status = 0;
        foreach (is_array($lines) ? $lines : [] as $line) {
            if (preg_match('#^HTTP/\S+\s+(\d{3})#', (string) $line, $m)) {
                $status = (int) $m[1];
            }
        }
        return $status;
    }

    /** Turns the wrapper's warning into a reason: "Connection refused", not "fopen(http://..)". */
    private static function streamProblem(?string $warning): string
    {
        if ($warning === null) {
            return 'request failed';
        }
        $reason = preg_replace('/^fopen\([^)]*\):\s*/', '', $warning);
        return 'request failed: ' . $reason;
    }

    // ---- small helpers ----

    private function reset(): void
    {
        $this->lastError = null;
        $this->lastStatus = null;
    }

    /** @return false */
    private function fail(string $message, int $status = 0)
    {
        $this->lastError = $message;
        $this->lastStatus = $status ?: null;
        if ($this->options['throw']) {
            throw new PublishException($message, $status);
        }
        return false;
    }

    private function describe(string $method, string $path): string
    {
        return $method . ' ' . $this->prefixPath . $path;
    }

    private function idempotencyKey(array $opts): string
    {
        if (isset($opts['idempotency_key']) && $opts['idempotency_key'] !== '') {
            return (string) $opts['idempotency_key'];
        }
        // Random, so that a retry of this call (and only of this call) is
        // recognised by the server as the same publish.
        return bin2hex(random_bytes(16));
    }

    /**
     * A channel name as a URL path: every byte outside the channel alphabet
     * is percent-encoded, so a bad name reaches the server intact and is
     * refused there (400) with the rule it broke.
     */
    private static function channelPath(string $channel): string
    {
        return str_replace('%2F', '/', rawurlencode($channel));
    }

    /** @param mixed $value */
    private static function json($value): string
    {
        return json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
    }

    private static function base64url(string $bytes): string
    {
        return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
    }

    private static function isJsonType(string $type): bool
    {
        $media = strtolower(trim(explode(';', $type, 2)[0]));
        return $media === 'application/json' || substr($media, -5) === '+json';
    }

    private static function isXmlType(string $type): bool
    {
        $media = strtolower(trim(explode(';', $type, 2)[0]));
        return $media === 'application/xml' || $media === 'text/xml' || substr($media, -4) === '+xml';
    }

    private static function isUtf8(string $s): bool
    {
        return preg_match('//u', $s) === 1;
    }

    private static function xmlEscape(string $s): string
    {
        return htmlspecialchars($s, ENT_QUOTES | ENT_XML1, 'UTF-8');
    }

    /** A header value must not carry CR, LF or NUL, or it could inject headers. */
    private static function headerSafe(string $value): bool
    {
        return strpbrk($value, "\r\n\0") === false;
    }
}

/**
 * One HTTP answer, or a failure to get one (status 0).
 *
 * @internal
 */
final class Response
{
    /** @var int */
    public $status;
    /** @var string */
    public $body;
    /** @var string|null why no answer came */
    public $error;

    public function __construct(int $status, string $body, ?string $error = null)
    {
        $this->status = $status;
        $this->body = $body;
        $this->error = $error;
    }

    public static function failed(string $error): self
    {
        return new self(0, '', $error);
    }

    /** What went wrong, for lastError(): the server's own reason when it gave one. */
    public function problem(): string
    {
        if ($this->status === 0) {
            return 'no answer: ' . $this->error;
        }
        $problem = "HTTP {$this->status}";
        $answer = json_decode($this->body, true);
        if (is_array($answer) && isset($answer['error']) && is_string($answer['error'])) {
            return "$problem: {$answer['error']}";
        }
        $text = trim(preg_replace('/\s+/', ' ', strip_tags($this->body)) ?? '');
        if ($text !== '') {
            $problem .= ': ' . (strlen($text) > 200 ? substr($text, 0, 200) . '...' : $text);
        }
        return $problem;
    }
}
