<?php
declare(strict_types=1);
// 200 only when the database answers.
require __DIR__ . '/../lib/db.php';

header('Content-Type: text/plain; charset=utf-8');
header('Cache-Control: no-store');
try {
    db()->query('SELECT 1')->fetchColumn();
    echo "ok\n";
} catch (Throwable $ex) {
    http_response_code(503);
    echo "database unavailable\n";
}
