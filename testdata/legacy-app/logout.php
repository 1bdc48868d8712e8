<?php
declare(strict_types=1);

require __DIR__ . '/lib.php';

startSession();
requirePostWithCsrf();
$_SESSION = [];
session_destroy();
redirect('login.php');
