<?php
declare(strict_types=1);

/** A PDO connection to MariaDB from DB_HOST / DB_PORT / DB_NAME / DB_USER / DB_PASSWORD. */
function db(): PDO
{
    static $pdo = null;
    if ($pdo instanceof PDO) {
        return $pdo;
    }
    $dsn = sprintf(
        'mysql:host=%s;port=%d;dbname=%s;charset=utf8mb4',
        getenv('DB_HOST') ?: 'localhost',
        (int) (getenv('DB_PORT') ?: 3306),
        getenv('DB_NAME') ?: 'guestbook'
    );
    $pdo = new PDO($dsn, getenv('DB_USER') ?: 'guestbook', getenv('DB_PASSWORD') ?: '', [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_DEFAULT_FETCH_MODE => PDO::FETCH_ASSOC,
        PDO::ATTR_EMULATE_PREPARES => false,
        PDO::ATTR_TIMEOUT => 3,
    ]);
    $pdo->exec("CREATE TABLE IF NOT EXISTS entries (
        id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(100) NOT NULL,
        message TEXT NOT NULL,
        image VARCHAR(100) NULL,
        created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci");
    return $pdo;
}

function e(?string $text): string
{
    return htmlspecialchars($text ?? '', ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

const UPLOAD_DIR = __DIR__ . '/../public/uploads';
const IMAGE_TYPES = ['image/jpeg' => 'jpg', 'image/png' => 'png', 'image/gif' => 'gif', 'image/webp' => 'webp'];
const MAX_IMAGE_BYTES = 5 * 1024 * 1024;

/** Store an uploaded image under a random name; returns the name, null if none, or throws. */
function store_image(array $file): ?string
{
    if (($file['error'] ?? UPLOAD_ERR_NO_FILE) === UPLOAD_ERR_NO_FILE) {
        return null;
    }
    if ($file['error'] !== UPLOAD_ERR_OK || $file['size'] > MAX_IMAGE_BYTES) {
        throw new RuntimeException('The picture could not be received (max 5 MB).');
    }
    $type = (new finfo(FILEINFO_MIME_TYPE))->file($file['tmp_name']);
    if (!isset(IMAGE_TYPES[$type]) || getimagesize($file['tmp_name']) === false) {
        throw new RuntimeException('Only JPEG, PNG, GIF or WebP pictures are accepted.');
    }
    $name = bin2hex(random_bytes(12)) . '.' . IMAGE_TYPES[$type];
    if (!move_uploaded_file($file['tmp_name'], UPLOAD_DIR . '/' . $name)) {
        throw new RuntimeException('The picture could not be saved.');
    }
    return $name;
}
